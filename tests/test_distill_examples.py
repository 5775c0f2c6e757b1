"""`distill examples`: verified programs -> a deduplicated, re-checked, eval-disjoint bank."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.agents import fake_agent, spots_png, write_dataset
from vpagent.distill.example_bank import (
    DUPLICATE_PROGRAM,
    DUPLICATE_QUESTION,
    EVAL_IMAGE,
    RERUN_MISMATCH,
    build_bank,
    normalise_program,
    write_bank,
)
from vpagent.distill.traces import generate_traces
from vpagent.evaluation.datasets import load_dataset
from vpagent.planner import Example, ExampleRetriever, load_examples


def test_bank_is_deduplicated_rechecked_and_keeps_eval_images_out(tmp_path: Path) -> None:
    for i in range(4):
        spots_png(tmp_path / f"{i}.png", 1 + i % 2, height=40 + 10 * i)
    ask = "How many spots are there?"
    rows = [
        {"id": "a", "image": "0.png", "question": ask, "answer": "1", "type": "count"},
        {"id": "b", "image": "1.png", "question": "Count the spots.", "answer": "2"},
        {"id": "c", "image": "2.png", "question": "How many spots are there ?", "answer": "1"},
        {"id": "d", "image": "3.png", "question": "Spots: how many?", "answer": "2"},
    ]
    dataset = write_dataset(tmp_path, rows)
    traces = tmp_path / "traces"
    generate_traces(load_dataset(dataset), traces, fake_agent, k=2, progress=False)
    # Every item is verified by the same counting program: one copy is kept.
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "same-picture.png").write_bytes((tmp_path / "3.png").read_bytes())
    eval_set = write_dataset(
        evaluation, [{"id": "e", "image": "same-picture.png", "question": "?", "answer": "2"}]
    )

    summary = build_bank(traces, fake_agent, exclude=[eval_set])
    assert summary.dropped == {EVAL_IMAGE: 1, DUPLICATE_PROGRAM: 2}
    assert len(summary.kept) == 1 and summary.kept[0].question == ask
    assert "image.find('spot')" in summary.kept[0].program

    bank = tmp_path / "bank.toml"
    write_bank(summary.kept, bank, origin="test")
    assert load_examples(bank) == summary.kept
    assert ExampleRetriever(load_examples(bank), lambda texts: _ones(len(texts))).top(ask, 1)


def _ones(n: int):  # type: ignore[no-untyped-def]
    import numpy as np

    return np.ones((n, 1))


def test_stale_label_is_dropped_on_rerun(tmp_path: Path) -> None:
    spots_png(tmp_path / "0.png", 2)
    rows = [{"id": "a", "image": "0.png", "question": "How many?", "answer": "2", "type": "n"}]
    traces = tmp_path / "traces"
    generate_traces(
        load_dataset(write_dataset(tmp_path, rows)), traces, fake_agent, k=2,
        progress=False,
    )  # fmt: skip
    header, line = (traces / "items.jsonl").read_text().splitlines()
    record = json.loads(line)
    record["item"]["answers"] = ["5"]
    (traces / "items.jsonl").write_text(header + "\n" + json.dumps(record) + "\n")
    summary = build_bank(traces, fake_agent)
    assert summary.dropped == {RERUN_MISMATCH: 1} and not summary.kept


def test_near_identical_questions_and_programs_are_repeats() -> None:
    from tests.test_distill_rationales import record
    from vpagent.distill.example_bank import BankSummary, _candidates

    assert normalise_program("def f(x):\n    # count\n    return  x\n") == normalise_program(
        "def f(x):\n\n    return x"
    )
    questions = ["How many cups are there?", "How many cups are there ?", "How many bowls?"]
    records = []
    for i, question in enumerate(questions):
        one = record(question, "2", [])
        one.attempts[0].program = f"def execute_command(image):\n    return '{i}'\n"
        records.append(one)
    summary = BankSummary()
    kept = _candidates(records, set(), summary)
    assert [r.item["question"] for r in kept] == [questions[0], questions[2]]
    assert summary.dropped == {DUPLICATE_QUESTION: 1}


def test_programs_with_triple_quotes_survive_the_toml(tmp_path: Path) -> None:
    tricky = Example(
        kind="k", question='Say "hi"?', program="def execute_command(image):\n    return '''hi'''\n"
    )
    plain = Example(kind="k", question="Plain?", program="def execute_command(image):\n    pass\n")
    write_bank([tricky, plain], tmp_path / "b.toml", origin="test")
    assert load_examples(tmp_path / "b.toml") == [tricky, plain]
