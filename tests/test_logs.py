"""Logging that keeps the evidence: JSON lines with the item or request id, tracebacks kept,
`--log-level` / `--log-json` on `vpagent eval` and `vpagent serve`."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from tests.fixtures.fakes import spots_image
from tests.test_agent_fallback import CRASH, GuessingVQA, make_agent
from vpagent.cli import app
from vpagent.http import create_app
from vpagent.logs import configure_logging, log_context

QUESTION = "How many spots are there?"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Take the handler a test installs off the ``vpagent`` logger again."""
    root = logging.getLogger("vpagent")
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_lines_carry_the_context_and_the_traceback(restore_logging: None) -> None:
    stream = io.StringIO()
    configure_logging("INFO", json_lines=True, stream=stream)
    log = logging.getLogger("vpagent.somewhere")
    with log_context(item_id="q7"):
        try:
            {}["missing"]
        except KeyError:
            log.exception("the lookup failed")
    log.debug("below the level")
    [entry] = json_lines(stream.getvalue())
    assert entry["item_id"] == "q7" and entry["level"] == "ERROR"
    assert entry["logger"] == "vpagent.somewhere" and entry["message"] == "the lookup failed"
    assert "KeyError: 'missing'" in str(entry["traceback"])


def test_a_bad_level_is_refused() -> None:
    with pytest.raises(ValueError, match="log level"):
        configure_logging("LOUD")


def test_eval_logs_each_failure_with_its_item_id(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, restore_logging: None
) -> None:
    image = tmp_path / "spots.png"
    Image.fromarray(spots_image()).save(image)
    dataset = tmp_path / "items.jsonl"
    row = {"id": "spots-1", "image": str(image), "question": QUESTION, "answer": "2"}
    dataset.write_text(json.dumps(row) + "\n")
    agent = make_agent([CRASH], GuessingVQA(), max_repairs=0)
    monkeypatch.setattr("vpagent.cli.evaluate.agent_or_fail", lambda _settings: agent)
    run = CliRunner().invoke(
        app, ["eval", str(dataset), "--log-json", "--log-level", "INFO", "--json"]
    )
    assert run.exit_code == 0, run.output
    entries = json_lines(run.stderr)
    failed = [e for e in entries if "failed (runtime)" in str(e["message"])]
    assert failed and all(e["item_id"] == "spots-1" for e in failed)


@pytest.mark.parametrize("command", ["eval", "serve"])
def test_the_commands_refuse_a_bad_level(command: str, tmp_path: Path) -> None:
    args = [command, str(tmp_path / "none.jsonl")] if command == "eval" else [command]
    run = CliRunner().invoke(app, [*args, "--log-level", "LOUD"])
    assert run.exit_code == 2 and "log level" in run.output


def test_an_http_answer_is_logged_with_its_request_id(
    caplog: pytest.LogCaptureFixture, restore_logging: None
) -> None:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    files = {"image": ("spots.png", buffer.getvalue(), "image/png")}
    configure_logging("INFO")  # the ContextFilter puts the ids on the records
    with make_agent([CRASH], GuessingVQA(), max_repairs=0) as agent, caplog.at_level("INFO"):
        TestClient(create_app(agent)).post("/v1/ask", files=files, data={"question": QUESTION})
    ids = {
        record.name: getattr(record, "ids", {}).get("request_id")
        for record in caplog.records
        if record.name in ("vpagent.http.answering", "vpagent.agent")
    }
    assert ids.get("vpagent.http.answering") and ids.get("vpagent.agent")
    assert ids["vpagent.http.answering"] == ids["vpagent.agent"]
