"""`distill traces`: verification, named rejections, resume after SIGKILL, worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.agents import broken_agent, comparable, fake_agent, spots_png, write_dataset
from vpagent.config import load_settings
from vpagent.distill.trace_records import (
    GUESSED,
    IMAGE_CORRUPT,
    IMAGE_MISSING,
    NO_MATCH,
    PLANNING_FAILED,
    WORKER_ERROR,
    ItemRecord,
)
from vpagent.distill.traces import (
    TraceRunError,
    generate_traces,
    load_item_records,
    load_run_info,
)
from vpagent.evaluation.datasets import EvalItem, load_dataset
from vpagent.pool.dataset_run import Backend
from vpagent.pool.jsonl import read_records, repair

REPO = Path(__file__).parents[1]


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    spots_png(tmp_path / "two.png", 2)
    spots_png(tmp_path / "one.png", 1)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ask = "How many spots are there?"
    return write_dataset(
        tmp_path,
        [
            {"id": "a", "image": "two.png", "question": ask, "answer": "2", "type": "count"},
            {"id": "b", "image": "one.png", "question": ask, "answer": "3", "type": "count"},
            {"id": "c", "image": "two.png", "question": ask, "answer": "5", "type": "count"},
            {"id": "d", "image": "gone.png", "question": ask, "answer": "1", "type": "count"},
            {"id": "e", "image": "corrupt.png", "question": ask, "answer": "1", "type": "count"},
            {"id": "f", "image": "one.png", "question": "prose?", "answer": "1", "type": "x"},
        ],
    )


def test_verifies_stops_sampling_and_names_rejections(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    summary = generate_traces(load_dataset(dataset), out, fake_agent, k=3, progress=False)
    records = {r.item_id: r for r in load_item_records(out)}
    assert summary.verified == 1 and summary.traced == 6
    assert summary.reasons == {
        NO_MATCH: 1, GUESSED: 1, IMAGE_MISSING: 1, IMAGE_CORRUPT: 1, PLANNING_FAILED: 1
    }  # fmt: skip

    two = records["a"]  # the temperature-0 program says 3, the first sampled one counts 2
    assert two.status == "verified" and two.verified == 1 and len(two.attempts) == 2
    assert [a.answer for a in two.attempts] == ["3", "2"] and two.attempts[1].correct
    assert two.verified_attempt and two.verified_attempt.steps[0].tool == "find"
    assert two.verified_attempt.steps[0].result[0]["label"] == "spot"
    assert len(records["a"].attempts) == 2  # verified: no third sample drawn
    guessed = records["b"]  # "3" is right, but only the program that never looked says so
    assert guessed.attempts[0].matches and not guessed.attempts[0].correct
    assert guessed.attempts[0].steps == [] and guessed.status == "rejected"

    unmatched = records["c"]  # 3, 2, then a crash and its failed repair
    assert [(a.sample, a.repair, a.reason) for a in unmatched.attempts] == [
        (0, 0, None),
        (1, 0, None),
        (2, 0, "runtime"),
        (2, 1, "runtime"),
    ]
    assert "ZeroDivisionError" in (unmatched.attempts[2].message or "")
    assert records["f"].attempts[0].reply == "I think the answer is probably two."
    assert load_run_info(out)["k"] == 3


def test_rerun_adds_nothing_and_other_settings_are_refused(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    items = load_dataset(dataset)
    generate_traces(items[:2], out, fake_agent, k=2, progress=False)
    before = (out / "items.jsonl").read_bytes()
    again = generate_traces(items[:2], out, fake_agent, k=2, progress=False)
    assert again.traced == 0 and again.skipped == 2 and again.verified == 1
    assert (out / "items.jsonl").read_bytes() == before
    with pytest.raises(TraceRunError, match="k: 2 vs 5"):
        generate_traces(items, out, fake_agent, k=5, progress=False)
    twice = [*items[:1], items[0]]
    with pytest.raises(TraceRunError, match="unique"):
        generate_traces(twice, tmp_path / "other", fake_agent, k=1, progress=False)


def test_backend_errors_are_named_and_retried_on_request(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "traces"
    items = load_dataset(dataset)[:2]
    failing = generate_traces(items, out, lambda: fake_agent(times_out=True), k=2, progress=False)
    assert failing.reasons == {WORKER_ERROR: 2}
    assert load_item_records(out)[0].detail == "TimeoutError: Request timed out."
    again = generate_traces(items, out, fake_agent, k=2, progress=False)
    assert again.traced == 0  # a plain rerun adds nothing
    retried = generate_traces(items, out, fake_agent, k=2, progress=False, retry_errors=True)
    assert retried.traced == 2 and retried.verified == 1
    records = load_item_records(out)
    assert len(records) == 2 and not any(r.reason == WORKER_ERROR for r in records)
    assert len(read_records(out / "items.jsonl")) == 5  # header + appended; the last record wins


def test_torn_last_line_is_cut_and_middle_damage_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": 3, "b')
    assert [r["a"] for r in read_records(path)] == [1, 2]
    assert repair(path) == len(b'{"a": 3, "b') and path.read_bytes().endswith(b"2}\n")
    path.write_bytes(b'{"a": 1}\n{"a": 2}')  # whole JSON, but the newline never landed
    assert [r["a"] for r in read_records(path)] == [1] and repair(path) == 8
    path.write_bytes(b'{"a": 1}\nnot json\n{"a": 3}\n')
    with pytest.raises(ValueError, match=r"x\.jsonl:2"):
        read_records(path)


KILLED_RUN = """
import sys
from pathlib import Path
from vpagent.distill.traces import generate_traces
from tests.fixtures.agents import slow_agent
from vpagent.evaluation.datasets import load_dataset
generate_traces(load_dataset(Path(sys.argv[1])), Path(sys.argv[2]), slow_agent,
                k=2, progress=False)
"""


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_mid_run_then_rerun_completes_without_duplicates(stop: int, tmp_path: Path) -> None:
    for spots in (1, 2, 3):
        spots_png(tmp_path / f"{spots}.png", spots)
    rows = [
        {"id": f"q{i}", "image": f"{1 + i % 3}.png", "question": "How many spots?",
         "answer": str(1 + i % 3), "type": "count"}
        for i in range(8)
    ]  # fmt: skip
    dataset, out = write_dataset(tmp_path, rows), tmp_path / "traces"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, str(dataset), str(out)], cwd=REPO, env=env
    )
    items_file = out / "items.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if items_file.is_file() and items_file.read_bytes().count(b"\n") >= 3:  # header + 2
            break
        time.sleep(0.05)
    os.kill(process.pid, stop)
    assert process.wait(timeout=60) != 0
    finished = len(load_item_records(out))
    assert 2 <= finished < 8, "the run was not stopped mid-way"
    assert items_file.read_bytes().endswith(b"\n")  # Ctrl-C and SIGKILL leave whole lines
    if stop == signal.SIGKILL:
        with open(items_file, "ab") as handle:  # as if the kill had torn a write
            handle.write(b'{"item_id": "q7", "status": "verif')

    summary = generate_traces(load_dataset(dataset), out, fake_agent, k=2, progress=False)
    records = load_item_records(out)
    assert sorted(r.item_id for r in records) == [f"q{i}" for i in range(8)]
    assert summary.skipped == finished and summary.traced == 8 - finished
    assert all(r.status == "verified" for r in records)


@pytest.mark.slow  # two spawned workers import the stack: ~15 s idle, a minute on a busy machine
def test_worker_processes_give_the_same_records(dataset: Path, tmp_path: Path) -> None:
    items = load_dataset(dataset)[:3]
    generate_traces(items, tmp_path / "one", fake_agent, k=3, progress=False)
    generate_traces(items, tmp_path / "pool", fake_agent, k=3, backend=Backend(2), progress=False)
    assert comparable(tmp_path / "one") == comparable(tmp_path / "pool")


def test_unbuildable_agent_is_a_clear_error(dataset: Path, tmp_path: Path) -> None:
    from vpagent.pool.local import AgentBuildFailed

    items = load_dataset(dataset)[:1]
    with pytest.raises(AgentBuildFailed, match="no model here"):
        generate_traces(
            items, tmp_path / "t", broken_agent, k=1, backend=Backend(1), progress=False
        )


def test_settings_factory_pickles_for_worker_processes() -> None:
    import pickle

    from vpagent.pool.factory import SettingsAgentFactory

    settings = load_settings(sandbox={"cpu_seconds": 3})
    factory = pickle.loads(pickle.dumps(SettingsAgentFactory(settings)))
    assert load_settings(None, **factory.values).model_dump() == settings.model_dump()


def test_workers_share_the_cores_unless_threads_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import vpagent.pool.factory as trace_item

    monkeypatch.setattr(trace_item, "default_threads", lambda: 8)
    shares = {
        workers: trace_item.SettingsAgentFactory(load_settings(), workers=workers)
        for workers in (1, 2, 3, 16)
    }
    assert {w: f.values["llm"]["threads"] for w, f in shares.items()} == {
        1: None, 2: 4, 3: 2, 16: 1
    }  # fmt: skip
    pinned = trace_item.SettingsAgentFactory(load_settings(llm={"threads": 3}), workers=2)
    assert pinned.values["llm"]["threads"] == 3


def test_cli_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vpagent.cli import app

    missing = tmp_path / "none.jsonl"
    result = CliRunner().invoke(app, ["distill", "traces", str(missing), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "none.jsonl" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["distill", "examples", str(tmp_path), "--out", "b.toml"])
    assert result.exit_code == 2 and "holds no items.jsonl" in " ".join(result.output.split())


def test_item_record_round_trips(dataset: Path, tmp_path: Path) -> None:
    items: list[EvalItem] = load_dataset(dataset)[:1]
    generate_traces(items, tmp_path / "t", fake_agent, k=2, progress=False)
    (record,) = load_item_records(tmp_path / "t")
    assert ItemRecord.model_validate_json(record.model_dump_json()) == record
    assert record.eval_item == items[0]
