"""Teacher (the agent) vs student on labelled items the student never saw.

For each item the student answers in one pass (the answer-only prompt, or the rationale prompt
with the answer parsed after ``Answer:``) and the teacher runs its program pipeline, or its
answers are read from a ``vpagent eval --out`` results file. Both are scored with
:func:`vpagent.evaluation.evaluate.score_item`. The report holds accuracy per type, agreement
(same normalised answer) and seconds per question (median, p90) of each side; it is written as
JSON with the per-item rows and a PNG plot next to it.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from vpagent.answers import with_choices
from vpagent.pool.header import HEADER_KEY
from vpagent.pool.jsonl import read_records
from vpagent.student.base import StudentError
from vpagent.student.records import Task, parse_answer, user_prompt
from vpagent.student.students import Student

ITEMS_FILE = "validation_items.jsonl"
REPORT_FILE = "report.json"
PLOT_FILE = "report.png"
ROWS_FILE = "items.jsonl"


class Side(BaseModel):
    """One answerer's prediction for an item."""

    prediction: str | None
    score: float
    seconds: float
    confidence: float | None = None
    error: str | None = None


class ItemComparison(BaseModel):
    id: str
    type: str
    question: str
    expected: list[str]
    image: str | None = None  # the photo: calibration splits by it
    student: Side
    teacher: Side | None = None
    agree: bool | None = None


class Timing(BaseModel):
    median: float
    p90: float
    mean: float


class SideSummary(BaseModel):
    accuracy: float
    per_type: dict[str, float]
    seconds: Timing


class Comparison(BaseModel):
    """The teacher-vs-student report."""

    dataset: str
    student: str
    task: str
    n: int
    per_type_n: dict[str, int]
    student_summary: SideSummary
    teacher_summary: SideSummary | None = None
    agreement: float | None = None
    speedup: float | None = Field(None, description="teacher median s / student median s")


def load_items(dataset: Path, limit: int | None = None) -> list[Any]:
    """Labelled items: an export's ``validation_items.jsonl``, or any ``vpagent eval`` dataset."""
    from vpagent.evaluation.datasets import DatasetError, read_dataset

    path = dataset / ITEMS_FILE if (dataset / ITEMS_FILE).is_file() else dataset
    try:
        items = read_dataset(path).items
    except DatasetError as error:
        raise StudentError(str(error)) from error
    if not items:
        raise StudentError(f"{path} holds no items")
    return items[:limit] if limit else items


def _timing(values: Sequence[float]) -> Timing:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return Timing(median=statistics.median(ordered), p90=p90, mean=statistics.fmean(ordered))


def _summary(items: Sequence[Any], sides: Sequence[Side]) -> SideSummary:
    by_type: dict[str, list[float]] = defaultdict(list)
    for item, side in zip(items, sides, strict=True):
        by_type[item.type].append(side.score)
    return SideSummary(
        accuracy=statistics.fmean(s.score for s in sides),
        per_type={t: statistics.fmean(v) for t, v in sorted(by_type.items())},
        seconds=_timing([s.seconds for s in sides]),
    )


def student_side(student: Student, item: Any, task: Task, max_new_tokens: int) -> Side:
    """The student's answer to one item, timed from the image file to the parsed answer."""
    from vpagent.evaluation.evaluate import score_item

    started = time.perf_counter()
    try:
        generation = student.generate(
            [Path(item.image)],
            [user_prompt(with_choices(item.question, item.choices), task)],
            max_new_tokens=max_new_tokens,
        )[0]
    except ValueError as error:  # an unreadable image
        return Side(prediction=None, score=0.0, seconds=0.0, error=str(error))
    seconds = time.perf_counter() - started
    answer = parse_answer(generation.text) or None
    error = None if answer else "the student gave no answer"
    return Side(
        prediction=answer,
        score=score_item(item, answer),
        seconds=seconds,
        confidence=generation.confidence,
        error=error,
    )


def read_teacher_results(path: Path) -> dict[str, Side]:
    """Teacher sides from a ``vpagent eval --out`` results JSONL, by item id."""
    from vpagent.evaluation.evaluate import ItemResult

    try:
        rows = [row for row in read_records(path) if HEADER_KEY not in row]
        results = [ItemResult.model_validate(row) for row in rows]
    except (OSError, ValueError) as error:  # CorruptFile, ValidationError: not eval results
        first = str(error).splitlines()[0]
        raise StudentError(f"{path}: not a `vpagent eval` results file ({first})") from None
    return {
        result.id: Side(prediction=result.prediction, score=result.score,
                        seconds=result.total_s, error=result.error)
        for result in results
    }  # fmt: skip


def agent_teacher(agent: Any) -> Callable[[Any], Side]:
    """A teacher that asks ``agent`` (``vpagent.agent.Agent``) each item."""
    from vpagent.evaluation.evaluate import evaluate_item

    def ask(item: Any) -> Side:
        result = evaluate_item(agent, item)
        return Side(
            prediction=result.prediction, score=result.score, seconds=result.total_s,
            error=result.error,
        )  # fmt: skip

    return ask


def compare(
    student: Student,
    items: Sequence[Any],
    *,
    teacher: Callable[[Any], Side] | dict[str, Side] | None,
    dataset: str,
    student_name: str,
    task: Task = "answer",
    max_new_tokens: int = 32,
    progress: bool = True,
) -> tuple[Comparison, list[ItemComparison]]:
    """Ask both sides every item; ``teacher`` is a callable, stored results, or None.

    The student answers all items first, then the teacher: interleaved on a small CPU, the
    agent's lingering threads (llama.cpp, tool workers) slowed the student's passes by a third.
    """
    from rich.progress import track

    from vpagent.answers import normalize_answer

    _warm_up(student, items)
    mine = [
        student_side(student, item, task, max_new_tokens)
        for item in track(items, description="student", disable=not progress)
    ]
    if callable(teacher):
        asked = track(items, description="teacher", disable=not progress)
        theirs = [teacher(item) for item in asked]
    else:
        theirs = [(teacher or {}).get(item.id) for item in items]
    rows: list[ItemComparison] = []
    for item, own, other in zip(items, mine, theirs, strict=True):
        agree = None
        if other is not None and own.prediction and other.prediction:
            agree = normalize_answer(own.prediction) == normalize_answer(other.prediction)
        elif other is not None:
            agree = False
        rows.append(
            ItemComparison(
                id=item.id,
                type=item.type,
                question=item.question,
                expected=item.answers,
                image=str(item.image),
                student=own,
                teacher=other,
                agree=agree,
            )
        )
    return summarise(rows, items, dataset, student_name, task), rows


def _warm_up(student: Student, items: Sequence[Any]) -> None:
    """Load the encoder and run the model once, so per-question times exclude loading."""
    import numpy as np

    if items:
        student.generate([np.zeros((32, 32, 3), np.uint8)], ["warm up"], max_new_tokens=1)


def summarise(
    rows: Sequence[ItemComparison], items: Sequence[Any], dataset: str, student: str, task: str
) -> Comparison:
    per_type_n: dict[str, int] = defaultdict(int)
    for item in items:
        per_type_n[item.type] += 1
    student_summary = _summary(items, [r.student for r in rows])
    taught = [(item, row) for item, row in zip(items, rows, strict=True) if row.teacher]
    teacher_summary = agreement = speedup = None
    if taught:
        teacher_summary = _summary([i for i, _ in taught], [r.teacher for _, r in taught])
        agreement = statistics.fmean(float(bool(r.agree)) for _, r in taught)
        if student_summary.seconds.median > 0:
            speedup = teacher_summary.seconds.median / student_summary.seconds.median
    return Comparison(
        dataset=dataset, student=student, task=task, n=len(rows),
        per_type_n=dict(sorted(per_type_n.items())), student_summary=student_summary,
        teacher_summary=teacher_summary, agreement=agreement, speedup=speedup,
    )  # fmt: skip


def write_report(report: Comparison, rows: Sequence[ItemComparison], out: Path) -> dict[str, Path]:
    """report.json, items.jsonl and report.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REPORT_FILE, "items": out / ROWS_FILE, "plot": out / PLOT_FILE}
    paths["json"].write_text(report.model_dump_json(indent=2), encoding="utf-8")
    paths["items"].write_text(
        "".join(row.model_dump_json() + "\n" for row in rows), encoding="utf-8"
    )
    plot(report, paths["plot"])
    return paths


def plot(report: Comparison, path: Path) -> None:
    """Accuracy per type and seconds per question, teacher vs student, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = list(report.per_type_n)
    sides = [("student", report.student_summary)]
    if report.teacher_summary is not None:
        sides.insert(0, ("teacher (agent)", report.teacher_summary))
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4), width_ratios=[3, 1])
    width = 0.8 / len(sides)
    for index, (name, summary) in enumerate(sides):
        xs = [i + index * width for i in range(len(types))]
        left.bar(xs, [summary.per_type.get(t, 0.0) for t in types], width, label=name)
    left.set_xticks([i + width * (len(sides) - 1) / 2 for i in range(len(types))])
    left.set_xticklabels([f"{t}\n(n={report.per_type_n[t]})" for t in types])
    left.set_ylim(0, 1)
    left.set_ylabel("accuracy")
    left.legend()
    left.set_title(f"accuracy per type ({report.n} items)")
    names = [name for name, _ in sides]
    right.bar(names, [s.seconds.median for _, s in sides], color=["C0", "C1"][: len(sides)])
    right.errorbar(
        names,
        [s.seconds.median for _, s in sides],
        yerr=[[0] * len(sides), [s.seconds.p90 - s.seconds.median for _, s in sides]],
        fmt="none",
        ecolor="black",
        capsize=4,
    )
    right.set_yscale("log")
    right.set_ylabel("seconds per question (median, bar to p90)")
    right.set_title("speed")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
