"""The OpenAI-compatible endpoints, driven by the real `openai` client and LangChain's
`ChatOpenAI` against a live server: answers, streaming, models, and every refusal."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import openai
import pytest
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.http_server import serving
from tests.test_http import _png
from vpagent.http import create_app

KEY = "k3y"
DATA_URL = "data:image/png;base64," + base64.b64encode(_png(spots_image())).decode()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    agent = make_agent([COUNT])
    with serving(create_app(agent, api_key=KEY)) as base:
        yield base
    agent.close()


@pytest.fixture
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)


def _message(text: str | None = "How many spots?", *urls: str) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = [{"type": "text", "text": text}] if text else []
    parts += [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    return [{"role": "user", "content": parts}]


def test_openai_client_gets_the_answer_and_vpagent_details(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="vpagent", messages=_message("How many spots?", DATA_URL)
    )  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "2" and reply.choices[0].finish_reason == "stop"
    extra = reply.model_extra["vpagent"]  # type: ignore[index]
    assert "find('spot')" in extra["program"] and extra["answered_by"] == "program"
    assert extra["verified"] is True and extra["trace_id"]
    assert [model.id for model in client.models.list()] == ["vpagent"]  # no student configured


def test_streaming_sends_progress_then_the_answer(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="vpagent",
        messages=_message("How many spots?", DATA_URL),
        stream=True,  # type: ignore[arg-type]
    )
    chunks = list(stream)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    events = [c.model_extra["vpagent"].get("event") for c in chunks if c.model_extra.get("vpagent")]  # type: ignore[union-attr]
    assert content == "2" and chunks[-1].choices[0].finish_reason == "stop"
    assert "planning" in events and any(str(e).startswith("step 1") for e in events if e)


def test_langchain_chat_openai_talks_to_vpagent(base_url: str) -> None:
    chat = ChatOpenAI(model="vpagent", base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)  # type: ignore[arg-type]
    message = HumanMessage(
        content=[
            {"type": "text", "text": "How many spots?"},
            {"type": "image_url", "image_url": {"url": DATA_URL}},
        ]
    )
    assert chat.invoke([message]).content == "2"


@pytest.mark.parametrize(
    ("messages", "model", "says"),
    [
        (_message("How many spots?"), "vpagent", "exactly one image_url part, not 0"),
        (_message("How many?", DATA_URL, DATA_URL), "vpagent", "exactly one image_url part, not 2"),
        (_message(None, DATA_URL), "vpagent", "question is empty"),
        (_message("Hi?", "https://example.com/cat.jpg"), "vpagent", "fetches nothing"),
        (_message("Hi?", "data:text/plain;base64,aGVsbG8="), "vpagent", "holds text/plain"),
        (_message("Hi?", "data:image/png;base64,bm90IGFuIGltYWdl"), "vpagent", "image"),
        ([{"role": "system", "content": "hi"}], "vpagent", "no user message"),
    ],
    ids=[
        "no-image",
        "two-images",
        "no-text",
        "http-url",
        "not-an-image-type",
        "corrupt",
        "no-user",
    ],
)
def test_bad_requests_get_openai_errors(
    client: openai.OpenAI, messages: list[dict[str, object]], model: str, says: str
) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    assert says in str(error.value) and error.value.body["type"] == "invalid_request_error"  # type: ignore[index]


def test_unknown_model_wrong_key_and_garbage_are_4xx(client: openai.OpenAI, base_url: str) -> None:
    with pytest.raises(openai.NotFoundError, match="vpagent-student"):
        client.chat.completions.create(model="vpagent-student", messages=_message("Hi?", DATA_URL))  # type: ignore[arg-type]
    stranger = openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        stranger.models.list()
    garbage = httpx.post(
        f"{base_url}/v1/chat/completions", content=b"{not json",
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )  # fmt: skip
    assert garbage.status_code == 400 and "error" in garbage.json()
