"""`vpagent distill calibrate`: the student-then-program threshold from a calibration split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from vpagent.cli import app
from vpagent.distill.student.calibrate import (
    CalibrationError,
    calibrate,
    choose,
    point,
    split_by_photo,
    teacher_point,
)
from vpagent.distill.student.confidence import PlattScaling, auroc, ece
from vpagent.distill.student.evaluate import ItemComparison, Side


def row(
    index: int, confidence: float, student_right: bool, teacher_right: bool = True
) -> ItemComparison:
    """One item on its own photo: student 0.1 s, teacher 5 s."""
    return ItemComparison(
        id=f"q{index}",
        type="count",
        question="How many?",
        expected=["2"],
        image=f"photo{index}.jpg",
        student=Side(
            prediction="2" if student_right else "3",
            score=float(student_right),
            seconds=0.1,
            confidence=confidence,
        ),
        teacher=Side(prediction="2", score=float(teacher_right), seconds=5.0),
    )


def confident_when_right(n: int) -> list[ItemComparison]:
    """A student that is right exactly when its confidence is high (>= 0.8)."""
    return [row(i, 0.9 if i % 2 else 0.3, student_right=bool(i % 2)) for i in range(n)]


def test_point_composes_each_items_answer_and_time() -> None:
    rows = [row(0, 0.9, True), row(1, 0.3, False)]
    mode = point(rows, 0.5)
    assert mode.accuracy == 1.0  # the unsure item fell back to the (right) teacher
    assert mode.seconds_per_question == pytest.approx((0.1 + 0.1 + 5.0) / 2)
    assert mode.student_share == 0.5
    assert point(rows, 0.0).accuracy == 0.5  # every student answer stands
    assert point(rows, 1.0).student_share == 0.0


def test_choose_takes_the_fastest_threshold_that_reaches_the_teacher() -> None:
    rows = confident_when_right(20)
    sweep = [point(rows, t) for t in (0.0, 0.2, 0.5, 0.8, 0.95)]
    threshold, reason = choose(sweep, teacher_point(rows))
    assert threshold == 0.8  # 0.5 and 0.8 both match the teacher; 0.8 keeps no fewer answers
    assert point(rows, threshold).accuracy == 1.0
    assert "fastest" in reason


def test_choose_says_when_no_threshold_reaches_the_teacher() -> None:
    rows = [row(i, 0.9, student_right=False) for i in range(6)] + [
        row(6, 0.2, student_right=False, teacher_right=True)
    ]
    teacher = teacher_point(rows)
    sweep = [point(rows, t) for t in (0.0, 0.5)]
    threshold, reason = choose(sweep, teacher)
    assert threshold == 0.5 and "most accurate" in reason


def test_split_keeps_each_photo_on_one_side() -> None:
    rows = [*confident_when_right(10), row(3, 0.9, True).model_copy(update={"id": "q3b"})]
    calibration, report = split_by_photo(rows, 0.5, seed=1)
    photos = {r.image for r in calibration}
    assert photos.isdisjoint({r.image for r in report})
    assert len(calibration) + len(report) == len(rows)
    assert split_by_photo(rows, 0.5, seed=1) == (calibration, report)


def test_calibrate_reports_on_photos_it_did_not_choose_on() -> None:
    result = calibrate([confident_when_right(40)], fraction=0.5, seed=0)
    assert result.calibration_items + result.report_items == 40
    assert 0.3 < result.raw_threshold <= 0.9  # the raw confidence agent.student_threshold reads
    assert result.chosen.accuracy == 1.0
    assert result.confidence_quality["all"].auroc == 1.0
    assert result.chosen.seconds_per_question < result.teacher.seconds_per_question / 1.5
    assert result.student.accuracy == pytest.approx(0.5, abs=0.2)


def test_cli_writes_the_threshold_table_and_plot(tmp_path: Path) -> None:
    (tmp_path / "items.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in confident_when_right(30))
    )
    result = CliRunner().invoke(app, ["distill", "calibrate", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    chosen = json.loads(result.output)
    assert chosen["chosen"]["accuracy"] == 1.0
    assert (tmp_path / "calibration.png").stat().st_size > 1000
    assert (
        json.loads((tmp_path / "calibration.json").read_text())["threshold"] == chosen["threshold"]
    )


def test_cli_refuses_an_eval_without_a_teacher(tmp_path: Path) -> None:
    untaught = row(0, 0.5, True).model_copy(update={"teacher": None})
    (tmp_path / "items.jsonl").write_text(untaught.model_dump_json() + "\n")
    result = CliRunner().invoke(app, ["distill", "calibrate", str(tmp_path)])
    assert result.exit_code == 2
    assert "no teacher answer" in " ".join(result.output.split())  # rich wraps long paths
    with pytest.raises(CalibrationError, match="cannot be split"):
        split_by_photo([row(0, 0.5, True)], 0.5, seed=0)


def test_calibrate_pools_runs_on_the_same_photo_split() -> None:
    sure = confident_when_right(40)
    unsure = [r.model_copy(update={"student": r.student.model_copy(update={"confidence": 0.3})})
              for r in sure]  # fmt: skip
    result = calibrate([sure, unsure], fraction=0.5, seed=0)
    alone = calibrate([sure], fraction=0.5, seed=0)
    assert result.runs == 2 and result.report_items == alone.report_items  # per run
    assert len(result.chosen_per_run) == 2
    per_run = [p.seconds_per_question for p in result.chosen_per_run]
    assert result.chosen.seconds_per_question == pytest.approx(sum(per_run) / 2)
    assert result.teacher == alone.teacher  # one teacher, whatever the students


def test_cli_pools_several_eval_folders_and_refuses_other_items(tmp_path: Path) -> None:
    folders = [tmp_path / "seed0", tmp_path / "seed1", tmp_path / "other"]
    for folder, n in zip(folders, (30, 30, 20), strict=True):
        rows = confident_when_right(n)
        folder.mkdir()
        (folder / "items.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in rows))
    pooled = CliRunner().invoke(app, ["distill", "calibrate", *map(str, folders[:2]), "--json"])
    assert pooled.exit_code == 0, pooled.output
    assert json.loads(pooled.output)["runs"] == 2
    mixed = CliRunner().invoke(app, ["distill", "calibrate", *map(str, folders[::2])])
    assert mixed.exit_code == 2
    assert "other items" in mixed.output


def _overconfident(n: int, seed: int) -> tuple[list[float], list[bool]]:
    """A toy score that is far too sure: the true chance of a right answer q, reported as
    sigmoid(3 logit(q) + 1)."""
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.02, 0.98, n)
    right = rng.uniform(size=n) < q
    score = 1 / (1 + np.exp(-(3 * np.log(q / (1 - q)) + 1)))
    return score.tolist(), right.tolist()


def test_platt_scaling_corrects_a_known_miscalibrated_score() -> None:
    scores, right = _overconfident(4000, seed=0)
    scaling = PlattScaling.fit(scores, right)
    assert scaling.slope == pytest.approx(1 / 3, abs=0.05)  # the inverse of the toy's map
    assert scaling.bias == pytest.approx(-1 / 3, abs=0.1)
    held_scores, held_right = _overconfident(4000, seed=1)
    calibrated = scaling.apply(held_scores)
    assert ece(held_scores, held_right) > 0.1
    assert ece(calibrated, held_right) < 0.03
    assert auroc(calibrated, held_right) == pytest.approx(auroc(held_scores, held_right))
    raw = scaling.raw_threshold(0.5)
    assert scaling.apply([raw])[0] == pytest.approx(0.5)


def test_auroc_and_ece_on_known_cases() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([0.5, 0.6], [True, True]) is None  # no wrong answer to separate from
    assert ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    assert ece([1.0] * 4, [True, False, True, False]) == pytest.approx(0.5)


def test_calibrate_picks_the_threshold_on_the_calibrated_scale() -> None:
    scores, right = _overconfident(200, seed=2)
    rows = [row(i, s, r) for i, (s, r) in enumerate(zip(scores, right, strict=True))]
    result = calibrate([rows], fraction=0.5, seed=0)
    assert result.scaling.slope < 0.6  # it learnt that the raw score is overconfident
    quality = result.confidence_quality["all"]
    assert quality.ece < quality.ece_raw
    assert result.raw_threshold == pytest.approx(result.scaling.raw_threshold(result.threshold))
