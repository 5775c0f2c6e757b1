"""OpenAI-compatible endpoints: `POST /v1/chat/completions` and `GET /v1/models`.

The last user message carries the question as text and the picture as one ``image_url`` part
holding a data URL (``data:image/png;base64,...``); vpagent fetches nothing, so an http(s)
URL is a 400. The answer is the assistant message; what else vpagent knows (the program, the
trace id, who answered, whether a program checked it) is in the response's ``vpagent`` field.
With ``stream: true`` the progress events come as chunks whose ``vpagent.event`` names them,
then the answer as content, then ``[DONE]``. Models: ``vpagent`` (a program answers) and,
with a student configured, ``vpagent-student`` and ``vpagent-auto`` (student, then program).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vpagent.agent import Agent
from vpagent.events import Event
from vpagent.http.answering import Answerer, Question
from vpagent.http.chat_schema import ChatMessage
from vpagent.result import Result, ResultSummary
from vpagent.tools.types import GivenMark

MODELS = {
    "vpagent": "program",
    "vpagent-student": "student",
    "vpagent-auto": "student-then-program",
}
DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,(?P<data>.*)$", re.S)


class ChatRequest(BaseModel):
    """The fields of a chat-completions request vpagent reads; others are accepted, unused."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    choices: list[str] | None = None  # vpagent's own: a multiple-choice question's options
    marks: list[GivenMark] | None = None  # vpagent's own: places the question names, as data


def bad_request(message: str, status: int = 400) -> HTTPException:
    return HTTPException(status, message)


def available_models(agent: Agent) -> list[str]:
    """``vpagent``, and the student models when a student is configured."""
    return list(MODELS) if agent.student is not None else ["vpagent"]


def _image_bytes(url: Any) -> bytes:
    if not isinstance(url, str) or not url:
        raise bad_request("an image_url part needs a url")
    if url.startswith(("http://", "https://")):
        raise bad_request("vpagent fetches nothing: send the image as a data URL (data:image/...)")
    match = DATA_URL.match(url)
    if match is None:
        raise bad_request("image_url must be a base64 data URL: data:image/png;base64,...")
    if not (match.group("mime") or "image/").startswith("image/"):
        raise bad_request(f"the data URL holds {match.group('mime')}, not an image")
    try:
        return base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("the data URL's base64 does not decode") from None


def parse_question(body: ChatRequest, agent: Agent) -> tuple[bytes, str, str]:
    """The image file, question and answer mode of the last user message; a 400/404 naming
    what is wrong."""
    if body.model not in available_models(agent):
        raise bad_request(
            f"the model {body.model!r} does not exist here; use one of "
            f"{', '.join(available_models(agent))}",
            404,
        )
    messages = [message.model_dump() for message in body.messages]
    users = [message for message in messages if message.get("role") == "user"]
    if not users:
        raise bad_request("the messages hold no user message")
    content = users[-1].get("content")
    parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(parts, list):
        raise bad_request("a user message's content must be text or a list of parts")
    texts = [str(part.get("text", "")) for part in parts if part.get("type") == "text"]
    images = [part.get("image_url") for part in parts if part.get("type") == "image_url"]
    if len(images) != 1:
        raise bad_request(
            f"the last user message needs exactly one image_url part, not {len(images)}"
        )
    image = images[0]
    image_bytes = _image_bytes(image.get("url") if isinstance(image, dict) else image)
    return image_bytes, " ".join(t for t in texts if t.strip()), MODELS[body.model]


EXTRA_FIELDS = {"answer", "program", "trace_id", "answered_by", "verified", "unverified_reason",
                "error", "error_kind", "timings", "attempts"}  # fmt: skip


def _extra(result: Result) -> dict[str, Any]:
    """The ``vpagent`` field: what the agent knows beyond the answer."""
    return ResultSummary.of(result).model_dump(mode="json", include=EXTRA_FIELDS)


def _content(result: Result) -> str:
    return result.answer if result.answer is not None else f"No answer: {result.error}"


def completion(result: Result, model: str, completion_id: str) -> dict[str, Any]:
    """A ``chat.completion`` object for ``result``."""
    usage = result.usage or {}
    prompt = int(usage.get("input_tokens", 0))
    written = int(usage.get("output_tokens", 0))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": _content(result)}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": written,
                  "total_tokens": prompt + written},
        "vpagent": _extra(result),
    }  # fmt: skip


def _chunk(completion_id: str, model: str, delta: dict[str, Any], **extra: Any) -> str:
    chunk = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": extra.pop("finish_reason", None)}],
        **extra,
    }  # fmt: skip
    return f"data: {json.dumps(chunk)}\n\n"


def openai_router(answerer: Answerer, agent: Agent, check_key: Callable[..., None]) -> APIRouter:
    """The two OpenAI-compatible routes, under the server's API key."""
    router = APIRouter(dependencies=[Depends(check_key)])

    @router.get("/v1/models")
    def models() -> dict[str, Any]:
        """The models this server answers as (OpenAI's list format)."""
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "vpagent"}
                for name in available_models(agent)]  # fmt: skip
        return {"object": "list", "data": data}

    @router.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> dict[str, Any] | StreamingResponse:
        """A question about one image as an OpenAI chat completion (optionally streamed)."""
        raw = await request.body()
        try:  # in a thread: a large upload takes a while to parse and decode
            body = await asyncio.to_thread(ChatRequest.model_validate_json, raw)
        except ValidationError as error:
            raise bad_request(
                f"not a chat-completions request: {error.errors()[0]['msg']}"
            ) from None
        image_bytes, text, mode = await asyncio.to_thread(parse_question, body, agent)
        try:
            question = await answerer.read(image_bytes, text, mode, body.choices, marks=body.marks)
        except ValueError as error:  # an empty question, a bad mark, an unreadable image
            raise bad_request(str(error)) from None
        completion_id = f"chatcmpl-{secrets.token_hex(12)}"
        if not body.stream:
            try:
                result = await answerer.answer(question, request.is_disconnected)
            except ValueError as error:  # a mode this agent cannot answer in
                raise bad_request(str(error)) from None
            return completion(result, body.model, completion_id)
        answerer.admission.check()  # a refusal is an HTTP status, not a stream that fails
        return StreamingResponse(
            _stream(answerer, question, request, body.model, completion_id),
            media_type="text/event-stream",
        )

    return router


async def _stream(
    answerer: Answerer, question: Question, request: Request, model: str, completion_id: str
) -> AsyncIterator[str]:
    """Progress chunks while the question runs, then the answer, then ``[DONE]``."""
    events: asyncio.Queue[Event] = asyncio.Queue()
    task = asyncio.create_task(answerer.answer(question, request.is_disconnected, events))
    yield _chunk(completion_id, model, {"role": "assistant", "content": ""})
    try:
        while not task.done():
            waiting = asyncio.ensure_future(events.get())
            await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                event = waiting.result()
                yield _chunk(completion_id, model, {}, vpagent={"event": str(event)})
            else:
                waiting.cancel()
        result = task.result()
    except Exception as error:  # refused after all, past the deadline, a bad image
        yield _chunk(completion_id, model, {}, finish_reason="error",
                     vpagent={"error": str(error) or type(error).__name__})  # fmt: skip
        yield "data: [DONE]\n\n"
        return
    finally:
        if not task.done():
            task.cancel()
    yield _chunk(completion_id, model, {"content": _content(result)})
    yield _chunk(completion_id, model, {}, finish_reason="stop", vpagent=_extra(result))
    yield "data: [DONE]\n\n"
