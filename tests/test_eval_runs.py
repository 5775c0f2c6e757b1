"""`vpagent eval` at scale: resumable results files, refusal of foreign ones, workers and
threads giving the same answers, pair accuracy, official prediction formats."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.agents import fake_agent, slow_agent, spots_png, write_dataset
from vpagent.cli import app
from vpagent.config import load_settings
from vpagent.evaluation.datasets import EvalItem, load_dataset, read_dataset
from vpagent.evaluation.evaluate import ItemResult, evaluate, summarise
from vpagent.evaluation.predictions import PredictionsError, default_format, prediction_rows
from vpagent.evaluation.run_header import run_header
from vpagent.pool.dataset_run import Backend, RunRefused, read_run
from vpagent.pool.header import answer_settings

REPO = Path(__file__).parents[1]


def _rows(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"q{i}", "image": f"{1 + i % 3}.png", "question": "How many spots?",
         "answer": str(1 + i % 3), "type": "count"}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    for spots in (1, 2, 3):
        spots_png(tmp_path / f"{spots}.png", spots)
    return write_dataset(tmp_path, _rows(8))


def _answers(results: list[ItemResult]) -> dict[str, tuple[str | None, float]]:
    return {r.id: (r.prediction, r.score) for r in results}


def test_rerun_refuses_an_existing_file_and_resume_adds_only_the_rest(
    dataset: Path, tmp_path: Path
) -> None:
    items, out = load_dataset(dataset), tmp_path / "results.jsonl"
    header = run_header("eval", items, dataset=str(dataset), settings=load_settings())
    _, first = evaluate(items[:3], fake_agent, out=out, header=header, progress=False)
    with pytest.raises(RunRefused, match="pass --resume"):
        evaluate(items, fake_agent, out=out, header=header, progress=False)
    report, results = evaluate(
        items, fake_agent, out=out, header=header, resume=True, progress=False
    )
    found, records = read_run(out, ItemResult)
    assert found is not None and found.dataset.items == 8
    assert list(records) == [f"q{i}" for i in range(8)]  # each id once, none written twice
    assert len(out.read_text().splitlines()) == 1 + 8
    assert _answers(results)["q0"] == _answers(first)["q0"] and report.n == 8
    assert report.accuracy == pytest.approx(2 / 8)  # the fake planner always answers 3


def test_a_file_from_another_dataset_or_settings_is_refused_by_name(
    dataset: Path, tmp_path: Path
) -> None:
    items, out = load_dataset(dataset), tmp_path / "results.jsonl"
    settings = load_settings()
    evaluate(items[:2], fake_agent, out=out, progress=False,
             header=run_header("eval", items, dataset="a", settings=settings))  # fmt: skip
    other = load_settings(agent={"max_repairs": 5})
    with pytest.raises(RunRefused, match=r"agent\.max_repairs: 2 vs 5"):
        evaluate(items, fake_agent, out=out, resume=True, progress=False,
                 header=run_header("eval", items, dataset="a", settings=other))  # fmt: skip
    with pytest.raises(RunRefused, match=r"dataset a \(, 8 items\) vs b \(, 7 items\)"):
        evaluate(items[:7], fake_agent, out=out, resume=True, progress=False,
                 header=run_header("eval", items[:7], dataset="b", settings=settings))  # fmt: skip
    more_slots = load_settings(llm={"parallel": 4, "threads": 1})  # how, not what: resumable
    assert answer_settings(more_slots) == answer_settings(settings)


def test_cli_refuses_before_starting_the_agent(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    loaded = read_dataset(dataset)
    header = run_header(
        "eval", loaded.items, dataset=str(dataset), layout=loaded.layout, settings=load_settings()
    )
    evaluate(loaded.items[:2], fake_agent, out=out, header=header, progress=False)
    runner = CliRunner()
    again = runner.invoke(app, ["eval", str(dataset), "--out", str(out)])
    assert again.exit_code == 2 and "pass --resume" in " ".join(again.output.split())
    config = tmp_path / "other.toml"
    config.write_text("[agent]\nmax_repairs = 5\n")
    other = runner.invoke(
        app, ["eval", str(dataset), "--out", str(out), "--resume", "-c", str(config)]
    )
    assert other.exit_code == 2 and "agent.max_repairs: 2 vs 5" in " ".join(other.output.split())
    lone = runner.invoke(app, ["eval", str(dataset), "--resume"])
    assert lone.exit_code == 2 and "--resume needs --out" in lone.output


KILLED_RUN = """
import sys
from pathlib import Path
from tests.fixtures.agents import slow_agent
from vpagent.evaluation.datasets import load_dataset
from vpagent.evaluation.evaluate import evaluate
evaluate(load_dataset(Path(sys.argv[1])), slow_agent, out=Path(sys.argv[2]), progress=False)
"""


def test_sigkill_mid_run_then_resume_gives_each_id_once(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(dataset), str(out)],
                               cwd=REPO, env=env)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if out.is_file() and out.read_bytes().count(b"\n") >= 3:  # the header and two items
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=60) != 0
    finished = len(read_run(out, ItemResult)[1])
    assert 2 <= finished < 8, "the run was not stopped mid-way"
    with open(out, "ab") as handle:  # as if the kill had torn a write
        handle.write(b'{"id": "q7", "type": "cou')
    report, _ = evaluate(load_dataset(dataset), fake_agent, out=out, resume=True, progress=False)
    ids = [json.loads(line).get("id") for line in out.read_text().splitlines()[1:]]
    assert sorted(ids) == [f"q{i}" for i in range(8)] and report.n == 8


def test_threads_sharing_one_agent_give_the_serial_answers(dataset: Path) -> None:
    items = load_dataset(dataset)
    _, serial = evaluate(items, fake_agent, progress=False)
    _, threaded = evaluate(items, fake_agent, concurrency=3, progress=False)
    assert [r.id for r in threaded] == [r.id for r in serial]  # reported in dataset order
    assert _answers(threaded) == _answers(serial)


@pytest.mark.slow  # two spawned workers import the stack: ~15 s idle, a minute on a busy machine
def test_two_worker_processes_give_the_serial_answers(dataset: Path, tmp_path: Path) -> None:
    items = load_dataset(dataset)[:4]
    _, serial = evaluate(items, fake_agent, progress=False)
    _, pooled = evaluate(
        items, fake_agent, out=tmp_path / "r.jsonl", backend=Backend(2), concurrency=2,
        progress=False,
    )  # fmt: skip
    assert _answers(pooled) == _answers(serial)
    assert len(read_run(tmp_path / "r.jsonl", ItemResult)[1]) == 4


@pytest.mark.slow  # two spawned workers import the stack, one is killed and replaced: ~40 s
def test_a_worker_killed_during_eval_is_named_and_its_item_run_again(
    dataset: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out, killed = tmp_path / "r.jsonl", []

    def kill_a_worker() -> None:  # once the first record is in: both workers are busy
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            workers = multiprocessing.active_children()
            if workers and out.is_file() and out.read_bytes().count(b"\n") >= 2:
                killed.append(workers[0].pid)
                os.kill(workers[0].pid, signal.SIGKILL)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    with caplog.at_level(logging.WARNING, logger="vpagent.pool.local"):
        report, _ = evaluate(load_dataset(dataset), slow_agent, out=out, backend=Backend(2),
                             progress=False)  # fmt: skip
    killer.join(10)
    assert killed, "no worker was killed"
    assert f"worker process {killed[0]} killed by SIGKILL while running q" in caplog.text
    assert sorted(read_run(out, ItemResult)[1]) == [f"q{i}" for i in range(8)] and report.n == 8


def _result(
    item_id: str,
    score: float,
    pair: str | None = None,
    prediction: str | None = "x",
    **extra: object,
) -> ItemResult:
    return ItemResult(id=item_id, type="t", pair=pair, question="q?", prediction=prediction,
                      expected=["x"], score=score, **extra)  # type: ignore[arg-type]  # fmt: skip


def test_pair_accuracy_counts_a_pair_only_when_both_are_right() -> None:
    results = [
        _result("1", 1.0, "p1"), _result("2", 1.0, "p1"),
        _result("3", 1.0, "p2"), _result("4", 0.0, "p2"),
        _result("5", 0.0, "p3"), _result("6", 0.0, "p3"),
        _result("7", 1.0, "p4"), _result("8", 1.0, "p4"),
    ]  # fmt: skip
    report = summarise(results)
    assert report.accuracy == pytest.approx(5 / 8)
    assert report.pairs is not None and report.pairs.n == 4
    assert report.pairs.accuracy == pytest.approx(2 / 4)
    assert report.pairs.low <= 0.5 <= report.pairs.high and report.pairs.high <= 1.0
    assert summarise(results[:1]).pairs is None  # a lone item is not a pair
    assert summarise([_result("1", 1.0), _result("2", 0.0)]).pairs is None


def _folder_item(root: Path, name: str, question: str, image: Path) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "image.png").write_bytes(image.read_bytes())
    request = {"query": f"{question}\nOptions: (a) Yes (b) No", "images": ["image.png"],
               "answer": "(a)"}  # fmt: skip
    (folder / "request.json").write_text(json.dumps(request))


def test_mmvp_like_neighbours_become_pairs_and_chance_repeats_do_not(tmp_path: Path) -> None:
    one, two = spots_png(tmp_path / "1.png", 1), spots_png(tmp_path / "2.png", 2)
    mmvp = tmp_path / "mmvp"
    for pair, question in enumerate(["Is the dog facing left?", "Is the door open?"]):
        _folder_item(mmvp, str(2 * pair + 1), question, one)
        _folder_item(mmvp, str(2 * pair + 2), question, two)
    items = read_dataset(mmvp).items
    assert [item.pair for item in items] == ["1+2", "1+2", "3+4", "3+4"]
    repeats = [
        {"id": "a", "image": "1.png", "question": "Is it red?", "answer": "no"},
        {"id": "b", "image": "2.png", "question": "Is it red?", "answer": "no"},
        {"id": "c", "image": "1.png", "question": "How many?", "answer": "1"},
        {"id": "d", "image": "2.png", "question": "Is it big?", "answer": "no"},
        {"id": "e", "image": "1.png", "question": "Is it small?", "answer": "no"},
    ]
    assert all(item.pair is None for item in load_dataset(write_dataset(tmp_path, repeats)))


def test_prediction_files_in_the_official_formats() -> None:
    gqa = [_result("201307251", 1.0, prediction="Yes."), _result("2", 0.0, prediction=None)]
    assert prediction_rows(gqa, "gqa") == [
        {"questionId": "201307251", "prediction": "yes"},
        {"questionId": "2", "prediction": ""},
    ]
    assert prediction_rows(gqa, "vqa")[0] == {"question_id": 201307251, "answer": "Yes."}
    choices = ["yes", "no", "maybe"]
    picked = [
        _result("val_1", 1.0, prediction="no", choices=choices),
        _result("val_2", 1.0, prediction="(C)", choices=choices),
        _result("val_3", 0.0, prediction=None, choices=choices),
    ]
    assert prediction_rows(picked, "choice") == [
        {"question_id": "val_1", "answer": "B"},
        {"question_id": "val_2", "answer": "C"},
        {"question_id": "val_3", "answer": ""},
    ]
    assert default_format("GQA questions", gqa) == "gqa"
    assert default_format("Visual Sketchpad folders", picked) == "choice"
    with pytest.raises(PredictionsError, match="--predictions-format"):
        default_format("vpagent JSONL", gqa)


def test_loading_a_dataset_opens_no_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import PIL.Image

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("an image was opened while loading")

    spots_png(tmp_path / "1.png", 1)
    rows = [{"id": str(i), "image": "1.png", "question": f"q{i}?", "answer": "1"}
            for i in range(2000)]  # fmt: skip
    path = write_dataset(tmp_path, rows)
    monkeypatch.setattr(PIL.Image, "open", refuse)
    items: list[EvalItem] = load_dataset(path)
    assert len(items) == 2000 and all(item.image.name == "1.png" for item in items)


@pytest.mark.heavy  # three `vpagent eval` processes with the SmolLM2 planner: 80 s
def test_cli_serial_and_two_workers_agree_with_the_tiny_llm(tmp_path: Path, data_dir: Path) -> None:
    photos = [("two_dogs.jpg", "How many dogs are there?", "2"),
              ("bus.jpg", "What color is the bus?", "blue"),
              ("boats.jpg", "Are there boats?", "yes"),
              ("zidane.jpg", "How many people are there?", "2")]  # fmt: skip
    rows = [
        {"id": f"q{i}", "image": str(data_dir / "images" / name), "question": ask, "answer": answer}
        for i, (name, ask, answer) in enumerate(photos)
    ]
    dataset = write_dataset(tmp_path, rows)
    short = {"LLM__MODEL": "smollm2-135m", "LLM__THREADS": "1", "LLM__MAX_TOKENS": "48",
             "AGENT__MAX_FIXES": "0", "AGENT__MAX_REPAIRS": "0"}  # fmt: skip
    env = {**os.environ, **{f"VPAGENT_{key}": value for key, value in short.items()}}
    results = {}
    for name, extra in (("serial", []), ("workers", ["--workers", "2"])):
        out = tmp_path / f"{name}.jsonl"
        command = [sys.executable, "-m", "vpagent", "eval", str(dataset), "--out", str(out),
                   "--json", *extra]  # fmt: skip
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout)["n"] == 4
        results[name] = read_run(out, ItemResult)[1]
    assert sorted(results["serial"]) == sorted(results["workers"]) == ["q0", "q1", "q2", "q3"]
    assert {i: r.prediction for i, r in results["serial"].items()} == {
        i: r.prediction for i, r in results["workers"].items()
    }
