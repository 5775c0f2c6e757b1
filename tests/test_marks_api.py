"""Marks given as data reach the program through Agent.ask, HTTP /v1/ask and the OpenAI endpoint."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.fixtures.agents import fenced, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.http_server import serving
from vpagent.http import create_app

LIST_MARKS = fenced(
    "return ' '.join(f'{m.label}@{m.horizontal_center:.0f}' for m in image.marks())"
)
MARKS = [{"label": "A", "point": [10, 20]}, {"label": "1", "box": [40, 10, 60, 30]}]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_agent_ask_passes_marks_to_the_program_and_the_planner() -> None:
    agent = make_agent([LIST_MARKS])
    try:
        result = agent.ask(spots_image(), "Which marks are there?", marks=MARKS)
    finally:
        agent.close()
    assert result.answer == "A@10 1@50", result.error
    prompt = str(agent.planner.chat_model.last_prompt[-1].content)  # type: ignore[attr-defined]
    assert "Marks on the image: A (point at 10, 20), 1 (box at 50, 20)." in prompt
    (step,) = result.trace.steps
    assert [box["label"] for box in step.artifacts.boxes] == ["A", "1"]  # drawn in the rationale


def test_bad_marks_are_refused_before_any_work() -> None:
    agent = make_agent([])
    try:
        with pytest.raises(ValueError, match="mark 0"):
            agent.ask(spots_image(), "What is at A?", marks=[{"label": "A"}])
    finally:
        agent.close()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    agent = make_agent([LIST_MARKS] * 3)
    with serving(create_app(agent)) as base:
        yield base
    agent.close()


def test_http_json_and_multipart_take_marks(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=60) as http:
        body = {
            "image_base64": base64.b64encode(_png()).decode(),
            "question": "Which marks are there?",
            "marks": MARKS,
        }
        answer = http.post("/v1/ask", json=body)
        assert answer.status_code == 200 and answer.json()["answer"] == "A@10 1@50", answer.text
        form = http.post(
            "/v1/ask",
            files={"image": ("spots.png", _png(), "image/png")},
            data={"question": "Which marks are there now?", "marks": json.dumps(MARKS[:1])},
        )
        assert form.status_code == 200 and form.json()["answer"] == "A@10", form.text
        bad = http.post("/v1/ask", json={**body, "marks": [{"label": "A", "box": [5, 5, 1, 1]}]})
        assert bad.status_code == 422 and "box" in bad.text
        worse = http.post(
            "/v1/ask",
            files={"image": ("spots.png", _png(), "image/png")},
            data={"question": "Which?", "marks": "A: 1, 2"},
        )
        assert worse.status_code == 422 and "bad marks" in worse.text


def test_openai_endpoint_takes_marks(base_url: str) -> None:
    url = f"data:image/png;base64,{base64.b64encode(_png()).decode()}"
    content = [
        {"type": "text", "text": "Which marks are on it?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    body = {
        "model": "vpagent",
        "messages": [{"role": "user", "content": content}],
        "marks": [{"label": "B", "point": [70, 40]}],
    }
    reply = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "B@70"
