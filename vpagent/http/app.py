"""FastAPI app: `POST /v1/ask`, `GET /v1/traces/{id}`, the OpenAI-compatible
`POST /v1/chat/completions` and `GET /v1/models`, `GET /metrics`, `GET /healthz`.

Every bad input is a 4xx with a message (`{"detail": ...}`), never a 500: oversized bodies
(413), non-images and empty questions (422), a wrong API key (401), an unknown trace (404).
A busy server says 429 with `Retry-After`, a draining one 503, a request past its deadline 504
(:mod:`vpagent.http.admission`, :mod:`vpagent.http.answering`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import cachetools
import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field, TypeAdapter
from starlette.datastructures import UploadFile

import vpagent
from vpagent.agent import Agent
from vpagent.config import AnswerMode, ServerConfig
from vpagent.http import contract
from vpagent.http.admission import Admission
from vpagent.http.answering import Answerer, Question
from vpagent.http.auth import key_checker
from vpagent.http.limits import BodySizeLimit
from vpagent.http.metrics import ServerMetrics
from vpagent.http.openai_api import available_models, openai_router
from vpagent.http.outcomes import add_outcome_handlers
from vpagent.result import MAX_CHOICES, MAX_QUESTION_CHARS, Result, ResultSummary
from vpagent.student_mode import MODES
from vpagent.tools.types import GivenMark
from vpagent.trace.render import render_html

TRACES_KEPT = 256


MAX_MARKS = 26
MARKS = TypeAdapter(list[GivenMark])


DEADLINE_DESCRIPTION = (
    "This question's time budget in seconds (default: agent.deadline_s): no repair round "
    "starts that would end past it; the best answer so far returns with verified false and the "
    "reason. The request itself still ends at server.request_timeout_s (504)."
)


class AskJSON(BaseModel):
    """`POST /v1/ask` with a JSON body."""

    image_base64: str = Field(description="The image file, base64-encoded.")
    question: str = Field(max_length=MAX_QUESTION_CHARS)
    mode: AnswerMode | None = Field(
        None, description="Who answers (default: the server's agent.mode); student modes need "
        "agent.student.",
    )  # fmt: skip
    choices: list[str] | None = Field(
        None, max_length=MAX_CHOICES,
        description="A multiple-choice question's options; the answer is one of them.",
    )  # fmt: skip
    marks: list[GivenMark] | None = Field(
        None, max_length=MAX_MARKS,
        description="Places the question names ('What is at A?'): label and point or box.",
    )  # fmt: skip
    deadline_s: float | None = Field(None, gt=0, description=DEADLINE_DESCRIPTION)


ASK_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image", "question"],
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "question": {"type": "string", "maxLength": MAX_QUESTION_CHARS},
                    "mode": {"type": "string", "enum": list(MODES)},
                    "choices": {"type": "array", "items": {"type": "string"}},
                    "marks": {
                        "type": "string",
                        "description": "JSON list of marks: [{label, point | box}]",
                    },
                    "deadline_s": {
                        "type": "number",
                        "exclusiveMinimum": 0,
                        "description": DEADLINE_DESCRIPTION,
                    },
                },
            }
        },
        "application/json": {"schema": AskJSON.model_json_schema()},
    },
}


class AskResponse(ResultSummary):
    """The answer to ``POST /v1/ask``."""


class TraceStore:
    """The most recent traces, with their rendered HTML, for `GET /v1/traces/{id}`."""

    def __init__(self, max_entries: int = TRACES_KEPT) -> None:
        self._entries: cachetools.LRUCache[str, tuple[dict[str, Any], str]] = cachetools.LRUCache(
            max_entries
        )
        self._lock = threading.Lock()

    def put(self, trace_id: str, trace_json: dict[str, Any], html: str) -> None:
        with self._lock:
            self._entries[trace_id] = (trace_json, html)

    def keep(self, result: Result, pixels: np.ndarray) -> None:
        """Store ``result``'s trace, rendered (in the answering thread: rendering is slow)."""
        if result.trace is not None:
            html = render_html(result.trace, pixels)
            self.put(result.trace.id, result.trace.model_dump(mode="json"), html)

    def get(self, trace_id: str) -> tuple[dict[str, Any], str]:
        with self._lock:
            if trace_id not in self._entries:
                raise HTTPException(
                    404, f"no trace with id '{trace_id}' (only recent traces are kept)"
                )
            return self._entries[trace_id]


def create_app(
    agent: Agent, *, api_key: str | None = None, config: ServerConfig | None = None
) -> FastAPI:
    """The HTTP API around ``agent``. With ``api_key``, requests must send ``X-API-Key`` or
    ``Authorization: Bearer``. ``config``: upload size, admission limits, deadline."""
    config = config or ServerConfig()
    admission = Admission(config.max_concurrent or agent.parallel, config.max_queue)
    metrics = ServerMetrics(
        lambda: admission.waiting, lambda: admission.running, lambda: role_seconds(agent)
    )
    traces = TraceStore()
    answerer = Answerer(agent, admission, metrics, config.request_timeout_s, on_answer=traces.keep)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        admission.draining = True
        answerer.close()

    app = FastAPI(
        title="vpagent",
        version=vpagent.__version__,
        summary="Ask compositional questions about images; get answers, programs and traces.",
        lifespan=lifespan,
    )
    app.state.admission, app.state.answerer, app.state.metrics = admission, answerer, metrics
    check_key = key_checker(api_key)

    async def answer(request: Request, question: Question) -> AskResponse:
        try:
            result = await answerer.answer(question, request.is_disconnected)
        except ValueError as error:  # a mode this agent cannot answer in
            raise HTTPException(422, str(error)) from None
        return AskResponse.model_validate(ResultSummary.of(result).model_dump())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "draining" if admission.draining else "ok",
                "version": vpagent.__version__}  # fmt: skip

    @app.get("/metrics", response_class=PlainTextResponse)
    def prometheus_metrics() -> PlainTextResponse:
        """Prometheus text format: requests, latencies, queue, refusals, tool time."""
        return PlainTextResponse(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.post(
        "/v1/ask",
        response_model=AskResponse,
        dependencies=[Depends(check_key)],
        openapi_extra={"requestBody": ASK_REQUEST_BODY},
    )
    async def ask(request: Request) -> AskResponse:
        """Multipart (`image` file + `question` field) or JSON (`image_base64`, `question`)."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            raw = await request.body()
            try:  # in a thread: a large upload takes a while to parse and decode
                body, image_bytes = await asyncio.to_thread(_read_json, raw)
            except (ValueError, binascii.Error) as error:
                raise HTTPException(422, f"bad JSON body: {error}") from None
            question, mode, choices = body.question, body.mode, body.choices
            marks, deadline_s = body.marks, body.deadline_s
        elif content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            image_bytes, question = await _read_form(request)
            mode = (await request.form()).get("mode")  # parsed once; Starlette caches it
            mode = mode if isinstance(mode, str) and mode else None
            listed = (await request.form()).getlist("choices")
            choices = [c for c in listed if isinstance(c, str)] or None
            marks = _form_marks((await request.form()).get("marks"))
            deadline_s = _form_deadline((await request.form()).get("deadline_s"))
        else:
            raise HTTPException(415, "send multipart/form-data (image, question) or JSON")
        try:
            asked = await answerer.read(
                image_bytes, question, mode, choices, marks=marks, deadline_s=deadline_s
            )
        except ValueError as error:  # an empty question, a bad mark, an unreadable image
            raise HTTPException(422, str(error)) from None
        return await answer(request, asked)

    @app.get("/v1/traces/{trace_id}", dependencies=[Depends(check_key)], response_model=None)
    def get_trace(trace_id: str, format: str = "json") -> JSONResponse | HTMLResponse:
        """The trace as JSON, or as the HTML visual rationale with `?format=html`."""
        trace_json, html = traces.get(trace_id)
        if format == "html":
            return HTMLResponse(html)
        if format != "json":
            raise HTTPException(422, "format must be 'json' or 'html'")
        return JSONResponse(trace_json)

    app.include_router(openai_router(answerer, agent, check_key))
    add_outcome_handlers(app, metrics)
    contract.install(app, secured=bool(api_key), modes=available_modes(agent),
                     models=available_models(agent))  # fmt: skip
    app.add_middleware(BodySizeLimit, max_bytes=config.max_upload_mb * 1024 * 1024)
    return app


def available_modes(agent: Agent) -> list[str]:
    """The answer modes this agent has: the student modes need agent.student."""
    return [mode for mode in MODES if mode == "program" or agent.student is not None]


def role_seconds(agent: Agent) -> dict[str, float]:
    """Model seconds per role of the agent's toolbox; none before its tools start."""
    if not getattr(agent, "program_path_started", False):
        return {}
    return dict(agent.runner.toolbox.role_seconds)


def _form_marks(raw: object) -> list[GivenMark] | None:
    """The multipart ``marks`` field: a JSON list of marks (422 when it is not one)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        return MARKS.validate_json(raw)
    except ValueError as error:
        raise HTTPException(422, f"bad marks: {error}") from None


def _form_deadline(raw: object) -> float | None:
    """The multipart ``deadline_s`` field: seconds (422 when it is not a number)."""
    if raw is None or raw == "":
        return None
    try:
        return float(str(raw))
    except ValueError:
        raise HTTPException(422, f"bad deadline_s: {raw!r} is not a number") from None


def _read_json(raw: bytes) -> tuple[AskJSON, bytes]:
    body = AskJSON.model_validate_json(raw)
    return body, base64.b64decode(body.image_base64, validate=True)


async def _read_form(request: Request) -> tuple[bytes, str]:
    form = await request.form(max_files=1, max_fields=6 + MAX_CHOICES)
    unknown = sorted(set(form.keys()) - set(ASK_REQUEST_BODY["content"]["multipart/form-data"]
                                            ["schema"]["properties"]))  # fmt: skip
    if unknown:  # a misspelt field is an error, not silently ignored
        raise HTTPException(422, f"unknown form field(s): {', '.join(unknown)}")
    image = form.get("image")
    question = form.get("question")
    if not isinstance(image, UploadFile):
        raise HTTPException(422, "the form needs an 'image' file")
    if not isinstance(question, str):
        raise HTTPException(422, "the form needs a 'question' field")
    return await image.read(), question
