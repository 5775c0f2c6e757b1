"""One attempt record end to end: a question whose two programs fail and whose fallback answers
carries all three attempts through `ask --json`, an eval results file, HTTP and the app's
renderer; a tool that raises leaves its traceback in the log and the trace; files written
before the record existed still load."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures.agents import KeywordEmbed
from tests.fixtures.fakes import spots_image
from tests.test_agent_fallback import CRASH, GuessingVQA, make_agent, program
from vpagent.agent import Agent
from vpagent.apps.render import attempts_markdown
from vpagent.attempts import Attempt, FailureReason
from vpagent.cli import app
from vpagent.config import load_settings
from vpagent.distill.traces import load_item_records
from vpagent.evaluation.compare import read_results
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.evaluate import evaluate
from vpagent.http import create_app
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.program_runner import ProgramRunner
from vpagent.tools.roles import Detector
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import Detection, ToolInfo
from vpagent.trace.store import load_trace

OLD = Path(__file__).parent / "fixtures" / "old_formats"
DIVIDE = program("return 2 / 0")  # a second, different failing program
QUESTION = "How many spots are there?"


def two_failures_then_fallback() -> Agent:
    return make_agent([CRASH, DIVIDE], GuessingVQA(), max_repairs=1)


def assert_three_attempts(attempts: list[Attempt]) -> None:
    """Two failed programs, in order, then the fallback's answer."""
    assert [a.kind for a in attempts] == ["program", "program", "fallback"]
    first, second, fallback = attempts
    assert (first.repair, second.repair) == (0, 1)
    assert first.program is not None and "1 / 0" in first.program
    assert second.program is not None and "2 / 0" in second.program
    assert first.reason == second.reason == FailureReason.RUNTIME
    assert "ZeroDivisionError" in (first.message or "")
    assert fallback.reason is None and fallback.answer == "probably two"
    assert "guessing" in (fallback.message or "")


def test_the_result_keeps_every_attempt_in_order() -> None:
    with two_failures_then_fallback() as agent:
        result = agent.ask(spots_image(), QUESTION)
    assert result.answer == "probably two" and result.programs_tried == 2
    assert_three_attempts(result.attempts)
    assert result.trace is not None and result.trace.attempts == result.attempts


def test_ask_json_prints_the_attempts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    image = tmp_path / "spots.png"
    Image.fromarray(spots_image()).save(image)
    monkeypatch.setattr("vpagent.cli.main.agent_or_fail", lambda _s: two_failures_then_fallback())
    run = CliRunner().invoke(app, ["ask", str(image), QUESTION, "--json"])
    assert run.exit_code == 0, run.output
    payload = json.loads(run.stdout)
    assert_three_attempts([Attempt.model_validate(a) for a in payload["attempts"]])
    assert len(payload["trace"]["attempts"]) == 3


def test_an_eval_results_file_keeps_the_attempts(tmp_path: Path) -> None:
    image = tmp_path / "spots.png"
    Image.fromarray(spots_image()).save(image)
    item = EvalItem(id="q1", image=str(image), question=QUESTION, answers=["2"], type="count")
    out = tmp_path / "results.jsonl"
    with two_failures_then_fallback() as agent:
        evaluate([item], agent, out=out, progress=False)
    stored = read_results(out).results["q1"]
    assert stored.error_kind == FailureReason.RUNTIME and stored.prediction == "probably two"
    assert_three_attempts(stored.attempts)


def test_http_returns_the_attempts_in_the_answer_and_the_trace() -> None:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    with two_failures_then_fallback() as agent:
        client = TestClient(create_app(agent))
        files = {"image": ("spots.png", buffer.getvalue(), "image/png")}
        body = client.post("/v1/ask", files=files, data={"question": QUESTION}).json()
        trace = client.get(f"/v1/traces/{body['trace_id']}").json()
        page = client.get(f"/v1/traces/{body['trace_id']}?format=html").text
    assert_three_attempts([Attempt.model_validate(a) for a in body["attempts"]])
    assert_three_attempts([Attempt.model_validate(a) for a in trace["attempts"]])
    listed = page.split("Every attempt at the question (3)")[1]  # the visual rationale's list
    assert listed.index("1 / 0") < listed.index("2 / 0") < listed.index("probably two")


def test_the_app_shows_the_failed_programs_and_the_fallback() -> None:
    with two_failures_then_fallback() as agent:
        result = agent.ask(spots_image(), QUESTION)
    shown = attempts_markdown(result.attempts)
    assert "3 attempts" in shown
    assert "1 / 0" in shown and "2 / 0" in shown  # both failed programs, in full
    assert shown.count("failed (runtime)") == 2 and "Fallback" in shown
    assert shown.index("1 / 0") < shown.index("2 / 0") < shown.index("Fallback")


def test_an_answer_at_the_first_try_shows_no_history() -> None:
    assert attempts_markdown([Attempt(program="...", answer="2")]) == ""


class BrokenDetector(Detector):
    """A detector with a bug: every call raises KeyError."""

    def info(self) -> ToolInfo:
        return ToolInfo(role="detector", backend="broken", model="fake", stand_in=True)

    def detect_batch(
        self, images: list[np.ndarray], queries: list[list[str]]
    ) -> list[list[Detection]]:
        return self._look_up({}, "spot")

    def _look_up(self, table: dict[str, object], name: str) -> list[list[Detection]]:
        raise KeyError(name)


def test_a_tool_that_raises_leaves_its_traceback_in_the_log_and_the_trace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = load_settings(sandbox={"cpu_seconds": 2, "wall_seconds": 10})
    specialists = {"detector": BrokenDetector(), "vqa": GuessingVQA()}
    toolbox = Toolbox(settings.toolbox_config(), specialists=specialists)
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    reply = program("return len(image.find('spot'))")
    planner = Planner(FakeListChatModel(responses=[reply]), retriever, model_id="fake")
    runner = ProgramRunner(settings, toolbox=toolbox, pool_size=1)
    with Agent(planner, runner, max_repairs=0) as agent, caplog.at_level(logging.WARNING):
        result = agent.ask(spots_image(), QUESTION)
    assert result.trace is not None
    step = result.trace.steps[0]
    assert step.error_kind == FailureReason.TOOL_ERROR
    for traceback in (step.traceback, result.trace.traceback, result.attempts[0].traceback):
        assert traceback is not None and "_look_up" in traceback and "KeyError" in traceback
    logged = [r for r in caplog.records if r.exc_info and r.name == "vpagent.sandbox.executor"]
    assert logged and logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], KeyError)


def test_old_eval_results_still_load() -> None:
    results = read_results(OLD / "eval-results.jsonl").results
    failed = [r for r in results.values() if r.error_kind is not None]
    assert len(results) == 2 and failed[0].error_kind == FailureReason.TOOL_ERROR
    assert all(r.attempts == [] for r in results.values())


def test_old_distill_traces_still_load(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_bytes((OLD / "items.jsonl").read_bytes())
    records = {r.item_id: r for r in load_item_records(tmp_path)}
    failed = records["000000000064-06"].attempts
    assert failed[0].reason == FailureReason.RUNTIME and "program returned" in (
        failed[0].message or ""
    )
    steps = [step for attempt in failed for step in attempt.steps if step.error_kind]
    assert steps and all(s.error_kind == FailureReason.CANNOT_ANSWER for s in steps)


def test_an_old_trace_still_loads_with_the_one_vocabulary() -> None:
    trace = load_trace(OLD / "trace.json")
    assert trace.error_kind == FailureReason.TOOL_ERROR
    assert trace.steps[0].error_kind == FailureReason.TOOL_ERROR  # was "tool_failed"
    assert trace.attempts == []
