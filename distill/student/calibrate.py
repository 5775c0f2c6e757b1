"""The ``student-then-program`` threshold, chosen on a calibration split.

In that mode the student answers first; below ``agent.student_threshold`` confidence a program
is planned too, so an item costs the student's seconds plus, when it falls back, the teacher's.
From a ``vpagent distill eval`` run with a teacher (both sides per item) this module sweeps the
threshold and composes, per item, what the mode would have answered and how long it would have
taken. The validation photos are split in two: the threshold is chosen on the calibration half
(the fastest one that reaches the teacher's accuracy there, else the most accurate one) and
reported on the other half, which it never saw. Several runs on the same items (students of
several training seeds) are pooled: the sweep is their mean, the split is the same photos for
all, and the chosen threshold is also reported run by run so its spread shows.

The student's raw confidence (the mean probability of its answer tokens) is first calibrated:
Platt scaling (``confidence.py``) fitted on the calibration half maps it to the probability of
a right answer, the sweep runs on that scale, and ``raw_threshold`` is the chosen threshold on
the raw scale that ``agent.student_threshold`` compares with. AUROC and ECE (raw and
calibrated) per type are reported on the report half.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from vpagent.distill.student.confidence import PlattScaling, Quality, quality_per_type
from vpagent.distill.student.evaluate import ItemComparison

GRID = tuple(round(step / 20, 2) for step in range(21))  # 0.0, 0.05, ..., 1.0


class CalibrationError(ValueError):
    """The eval run cannot calibrate: no teacher side, or too few items."""


class Point(BaseModel):
    """What ``student-then-program`` gives at one threshold."""

    threshold: float
    accuracy: float
    seconds_per_question: float
    student_share: float  # items whose student answer stood


class Calibration(BaseModel):
    """The chosen threshold and the sweep on both halves (runs pooled)."""

    threshold: float  # on the calibrated scale
    raw_threshold: float  # the same threshold on the student's raw confidence
    reason: str
    scaling: PlattScaling  # raw confidence -> calibrated, fitted on the calibration half
    confidence_quality: dict[str, Quality]  # on the report half, per type and "all"
    runs: int
    calibration_items: int  # per run
    report_items: int
    teacher: Point  # the teacher alone on the report half (threshold: 1.01, nothing stands)
    student: Point  # the student alone on the report half (threshold 0)
    chosen: Point  # the chosen threshold on the report half
    chosen_per_run: list[Point]
    calibration_sweep: list[Point]
    report_sweep: list[Point]


def read_rows(eval_dir: Path) -> list[ItemComparison]:
    """The per-item rows of a ``distill eval`` report folder; each must carry a teacher side."""
    path = eval_dir / "items.jsonl"
    if not path.is_file():
        raise CalibrationError(f"no {path}: run `vpagent distill eval` with a teacher first")
    rows = [
        ItemComparison.model_validate_json(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    untaught = sum(row.teacher is None for row in rows)
    if untaught:
        raise CalibrationError(
            f"{untaught} of {len(rows)} items in {path} have no teacher answer; "
            "run `vpagent distill eval` with --teacher or --teacher-results"
        )
    return rows


def read_runs(eval_dirs: Sequence[Path]) -> list[list[ItemComparison]]:
    """Several ``distill eval`` folders of the same items (one per student run)."""
    runs = [read_rows(folder) for folder in eval_dirs]
    items = [sorted(row.id for row in rows) for rows in runs]
    for folder, ids in zip(eval_dirs[1:], items[1:], strict=True):
        if ids != items[0]:
            raise CalibrationError(
                f"{folder} holds other items than {eval_dirs[0]}: pool only runs on one item set"
            )
    return runs


def split_by_photo(
    rows: Sequence[ItemComparison], fraction: float, seed: int
) -> tuple[list[ItemComparison], list[ItemComparison]]:
    """(calibration, report): a seeded share of the photos, each photo wholly on one side."""
    photos = sorted({row.image or row.id for row in rows})
    random.Random(seed).shuffle(photos)
    chosen = set(photos[: round(len(photos) * fraction)])
    calibration = [row for row in rows if (row.image or row.id) in chosen]
    report = [row for row in rows if (row.image or row.id) not in chosen]
    if not calibration or not report:
        raise CalibrationError(
            f"{len(photos)} photos cannot be split into calibration and report halves"
        )
    return calibration, report


def point(rows: Sequence[ItemComparison], threshold: float) -> Point:
    """``student-then-program`` at ``threshold``, composed from each item's two sides."""
    scores, seconds, stood = [], [], 0
    for row in rows:
        assert row.teacher is not None
        confidence = row.student.confidence or 0.0
        if row.student.prediction and confidence >= threshold:
            scores.append(row.student.score)
            seconds.append(row.student.seconds)
            stood += 1
        else:
            scores.append(row.teacher.score)
            seconds.append(row.student.seconds + row.teacher.seconds)
    return Point(
        threshold=threshold,
        accuracy=statistics.fmean(scores),
        seconds_per_question=statistics.fmean(seconds),
        student_share=stood / len(rows),
    )


def teacher_point(rows: Sequence[ItemComparison]) -> Point:
    """The teacher alone (no student in front of it)."""
    sides = [row.teacher for row in rows if row.teacher is not None]
    return Point(
        threshold=1.01,
        accuracy=statistics.fmean(side.score for side in sides),
        seconds_per_question=statistics.fmean(side.seconds for side in sides),
        student_share=0.0,
    )


def choose(sweep: Sequence[Point], teacher: Point) -> tuple[float, str]:
    """The fastest threshold at or above the teacher's accuracy; else the most accurate one."""
    good = [p for p in sweep if p.accuracy >= teacher.accuracy]
    if good:
        best = min(good, key=lambda p: (p.seconds_per_question, -p.threshold))
        return best.threshold, "the fastest threshold at or above the teacher's accuracy"
    best = max(sweep, key=lambda p: (p.accuracy, -p.seconds_per_question))
    return best.threshold, "no threshold reached the teacher's accuracy: the most accurate one"


def calibrate(
    runs: Sequence[Sequence[ItemComparison]],
    *,
    fraction: float = 0.5,
    seed: int = 0,
    grid: Sequence[float] = GRID,
) -> Calibration:
    """Choose the threshold on a calibration share of the photos; report it on the rest.

    ``runs``: one or more eval runs on the same items; every run is split on the same photos.
    """
    if not runs:
        raise CalibrationError("no eval run to calibrate on")
    if not 0 < fraction < 1:
        raise CalibrationError("the calibration fraction must be between 0 and 1")
    raw_halves = [split_by_photo(rows, fraction, seed) for rows in runs]
    scaling = PlattScaling.fit(
        [row.student.confidence or 0.0 for half, _ in raw_halves for row in half],
        [_right(row) for half, _ in raw_halves for row in half],
    )
    halves = [(_calibrated(half, scaling), _calibrated(rest, scaling)) for half, rest in raw_halves]
    calibration = [row for half, _ in halves for row in half]
    report = [row for _, half in halves for row in half]
    raw_report = [row for _, half in raw_halves for row in half]
    calibration_sweep = [point(calibration, t) for t in grid]
    threshold, reason = choose(calibration_sweep, teacher_point(calibration))
    return Calibration(
        threshold=threshold,
        raw_threshold=scaling.raw_threshold(threshold),
        reason=reason,
        scaling=scaling,
        confidence_quality=quality_per_type(
            [row.type for row in raw_report],
            [row.student.confidence or 0.0 for row in raw_report],
            [row.student.confidence or 0.0 for row in report],
            [_right(row) for row in raw_report],
        ),
        runs=len(runs),
        calibration_items=len(halves[0][0]),
        report_items=len(halves[0][1]),
        teacher=teacher_point(report),
        student=point(report, 0.0),
        chosen=point(report, threshold),
        chosen_per_run=[point(half, threshold) for _, half in halves],
        calibration_sweep=calibration_sweep,
        report_sweep=[point(report, t) for t in grid],
    )


def _right(row: ItemComparison) -> bool:
    return row.student.score >= 0.5


def _calibrated(rows: Sequence[ItemComparison], scaling: PlattScaling) -> list[ItemComparison]:
    """The rows with the student's confidence on the calibrated scale (no answer: 0)."""
    values = scaling.apply([row.student.confidence or 0.0 for row in rows])
    return [
        row.model_copy(
            update={
                "student": row.student.model_copy(
                    update={"confidence": value if row.student.prediction else 0.0}
                )
            }
        )
        for row, value in zip(rows, values, strict=True)
    ]


def plot(calibration: Calibration, path: Path, title: str = "") -> None:
    """Accuracy vs mean seconds per question on the report half: the sweep, both sides alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    sweep = calibration.report_sweep
    axes.plot(
        [p.seconds_per_question for p in sweep], [p.accuracy for p in sweep], "o-", color="C2",
        label="student-then-program (thresholds 0 to 1)",
    )  # fmt: skip
    for p in sweep[:: max(1, len(sweep) // 5)]:
        axes.annotate(f"{p.threshold:g}", (p.seconds_per_question, p.accuracy), fontsize=8)
    chosen = calibration.chosen
    axes.plot(
        [chosen.seconds_per_question], [chosen.accuracy], "*", markersize=16, color="C3",
        label=f"chosen on the calibration half ({chosen.threshold:g})",
    )  # fmt: skip
    for name, side, colour in (
        ("teacher (agent)", calibration.teacher, "C0"),
        ("student alone", calibration.student, "C1"),
    ):
        axes.plot([side.seconds_per_question], [side.accuracy], "s", color=colour, label=name)
    axes.set_xscale("log")
    axes.set_xlabel("mean seconds per question (log)")
    axes.set_ylabel("accuracy")
    runs = f", {calibration.runs} runs pooled" if calibration.runs > 1 else ""
    axes.set_title(title or f"report half: {calibration.report_items} items{runs}")
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
