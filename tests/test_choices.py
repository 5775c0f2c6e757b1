"""Multiple-choice questions travel as data: `Agent.ask(..., choices=[...])`, the HTTP and
OpenAI request bodies and `vpagent eval` hand the options over as a list; the planner reads
them appended once (`with_choices`), and the answer's form is not checked against them."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.fixtures.fakes import spots_image
from tests.test_agent_fallback import GuessingVQA, make_agent, program
from vpagent.answers import with_choices
from vpagent.attempts import FailureReason
from vpagent.evaluation.compare import read_results
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.evaluate import evaluate
from vpagent.http import create_app
from vpagent.result import validate_choices

QUESTION = "Is the spot bright or dark?"
OPTIONS = ["bright", "dark", "striped"]
ASKED = "Is the spot bright or dark? Choose one of: bright, dark, striped."
STRIPED = program("return 'striped'")  # no word of the question: a misfit without the options


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_planner_reads_the_options_and_the_answer_may_be_any_of_them() -> None:
    with make_agent([STRIPED], GuessingVQA(), max_repairs=0) as agent:
        result = agent.ask(spots_image(), QUESTION, choices=OPTIONS)
    assert result.ok and result.answer == "striped" and result.verified
    assert result.question == QUESTION and result.choices == OPTIONS
    assert result.trace is not None and result.trace.question == ASKED


def test_without_the_options_the_same_answer_is_a_misfit() -> None:
    with make_agent([STRIPED], GuessingVQA(), max_repairs=0) as agent:
        result = agent.ask(spots_image(), QUESTION)
    assert result.attempts[0].reason == FailureReason.ANSWER_FORM
    assert "neither" in (result.attempts[0].message or "")


def test_with_choices_is_the_one_place_options_become_text() -> None:
    assert with_choices(QUESTION, OPTIONS) == ASKED
    assert with_choices(QUESTION, None) == with_choices(QUESTION, []) == QUESTION


def test_bad_choices_are_refused() -> None:
    assert validate_choices([" a ", "b"]) == ["a", "b"] and validate_choices([]) is None
    with pytest.raises(ValueError, match="empty"):
        validate_choices(["a", " "])
    with pytest.raises(ValueError, match="at most"):
        validate_choices([str(n) for n in range(30)])


def test_eval_hands_the_items_choices_over(tmp_path: Path) -> None:
    image = tmp_path / "spots.png"
    image.write_bytes(png())
    item = EvalItem(id="mc", image=image, question=QUESTION, answers=["striped"],
                    choices=OPTIONS, type="attribute")  # fmt: skip
    out = tmp_path / "results.jsonl"
    with make_agent([STRIPED], GuessingVQA(), max_repairs=0) as agent:
        report, _ = evaluate([item], agent, out=out, progress=False)
    stored = read_results(out).results["mc"]
    assert report.accuracy == 1.0 and stored.question == QUESTION
    assert stored.attempts[0].answer == "striped" and stored.attempts[0].reason is None


@pytest.mark.parametrize("body", ["multipart", "json"])
def test_http_takes_the_choices(body: str) -> None:
    with make_agent([STRIPED], GuessingVQA(), max_repairs=0) as agent:
        client = TestClient(create_app(agent))
        if body == "multipart":
            files = {"image": ("spots.png", png(), "image/png")}
            data = {"question": QUESTION, "choices": OPTIONS}
            reply = client.post("/v1/ask", files=files, data=data)
        else:
            payload = {"image_base64": base64.b64encode(png()).decode(), "question": QUESTION,
                       "choices": OPTIONS}  # fmt: skip
            reply = client.post("/v1/ask", json=payload)
        assert reply.status_code == 200, reply.text
        trace = client.get(f"/v1/traces/{reply.json()['trace_id']}").json()
    assert reply.json()["answer"] == "striped" and trace["question"] == ASKED


def test_the_openai_endpoint_takes_the_choices() -> None:
    url = "data:image/png;base64," + base64.b64encode(png()).decode()
    parts = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]
    message = {"role": "user", "content": parts}
    with make_agent([STRIPED], GuessingVQA(), max_repairs=0) as agent:
        client = TestClient(create_app(agent))
        body = {"model": "vpagent", "messages": [message], "choices": OPTIONS}
        reply = client.post("/v1/chat/completions", json=body).json()
    assert reply["choices"][0]["message"]["content"] == "striped"
    assert reply["vpagent"]["attempts"][0]["answer"] == "striped"
