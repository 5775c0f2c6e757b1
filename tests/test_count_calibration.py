"""The detector's counting calibration: its photo split, its questions, its arithmetic, and the
command end to end on a few coco128 photos (with a small search grid)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpagent.cli.main import app
from vpagent.distill import count_calibration as calibration
from vpagent.distill.coco import load_coco
from vpagent.distill.count_calibration import (
    absent_items,
    class_thresholds,
    count_items,
    photo_split,
    score_counts,
)
from vpagent.distill.export import split_images
from vpagent.distill.questions import Rules
from vpagent.evaluation.stats import wilson
from vpagent.llm.packs import sha256_file
from vpagent.tools.offline.detector import Calibration, SSDCocoDetector, load_calibration


@pytest.fixture(scope="module")
def coco(data_dir: Path) -> Path:
    return data_dir / "coco128"


def test_the_split_is_the_exports_and_never_mixes_photos(coco: Path) -> None:
    dataset = load_coco(coco / "instances.json")
    split = photo_split(dataset, coco / "images", val_fraction=0.2, seed=0)
    train = {image.id for image in split.train}
    validation = {image.id for image in split.validation}
    assert train.isdisjoint(validation)
    assert train | validation == {
        image.id for image in dataset.images if dataset.by_image.get(image.id)
    }
    assert len(validation) == round(len(train | validation) * 0.2)
    # the photos `distill export` holds out (by content hash, seed 0) are exactly these
    hashes = {sha256_file(coco / "images" / image.file_name): image.id for image in split.train}
    hashes |= {
        sha256_file(coco / "images" / image.file_name): image.id for image in split.validation
    }
    assert {hashes[h] for h in split_images(set(hashes), 0.2, 0)} == validation
    other = photo_split(dataset, coco / "images", val_fraction=0.2, seed=1)
    assert {image.id for image in other.validation} != validation


def test_count_questions_follow_the_annotations_and_absent_ones_are_zero(coco: Path) -> None:
    dataset = load_coco(coco / "instances.json")
    images = dataset.images[:12]
    present = count_items(dataset, images, Rules())
    absent = absent_items(dataset, images, Rules())
    assert present and absent
    for item in present:
        names = [dataset.category_name(note) for note in dataset.by_image[item.image_id]]
        assert item.answer == names.count(item.name) >= 1
        assert item.question.startswith("How many ") and item.question.endswith(" are there?")
    for item in absent:
        names = {dataset.category_name(note) for note in dataset.by_image[item.image_id]}
        assert item.answer == 0 and item.name not in names
    for image in images:  # as many absent categories as count questions, per photo
        mine = [item for item in absent if item.image_id == image.id]
        assert len(mine) <= len([item for item in present if item.image_id == image.id])
    assert absent_items(dataset, images, Rules()) == absent  # seeded: the same every run


def test_score_counts_arithmetic() -> None:
    score = score_counts([1, 2, 0, 7, 3], [1, 3, 1, 7, 3])
    assert (score["n"], score["correct"]) == (5, 3)
    assert score["accuracy"] == pytest.approx(0.6)
    assert score["mae"] == pytest.approx(2 / 5)
    assert score["per_size"]["1"] == (
        {"n": 2, "correct": 1, "accuracy": 0.5, "interval_95": list(wilson(1, 2)), "mae": 0.5}
    )
    assert score["per_size"]["2-4"]["n"] == 2 and score["per_size"]["2-4"]["correct"] == 1
    assert score["per_size"]["5+"]["correct"] == 1 and score["per_size"]["5+"]["mae"] == 0
    with pytest.raises(ValueError, match="answers but"):
        score_counts([1], [1, 2])


def test_wilson_interval_matches_the_textbook_value() -> None:
    low, high = wilson(8, 10)  # Wilson (1927) score interval, z = 1.96
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)


def test_a_class_gets_its_own_threshold_only_when_it_pays(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(calibration, "THRESHOLDS", (0.3, 0.5))
    items = [calibration.CountItem(i, "x.jpg", "cup", "q", 2) for i in range(8)]
    items += [calibration.CountItem(8 + i, "x.jpg", "dog", "q", 1) for i in range(8)]
    by_threshold = {0.3: [2] * 8 + [2] * 8, 0.5: [1] * 8 + [1] * 8}
    ones = [1.0] * 16
    # cups are counted right only at 0.3; dogs only at the default 0.5
    assert class_thresholds(items, ones, by_threshold, default=0.5) == {"cup": 0.3}
    few = items[:7] + items[8:]  # 7 cup questions: too few for a threshold of their own
    fewer = {t: v[:7] + v[8:] for t, v in by_threshold.items()}
    assert class_thresholds(few, ones[:15], fewer, 0.5) == {}


def test_balanced_weights_give_each_side_half() -> None:
    weights = calibration.balanced_weights(3, 1)
    assert weights[:3] == [pytest.approx(1 / 6)] * 3 and weights[3] == pytest.approx(0.5)
    # one wrong absent count costs as much as all three counted ones
    truths = [1, 2, 1, 0]
    assert calibration._key([1, 2, 1, 3], truths, weights)[0] == pytest.approx(0.5)
    assert calibration._key([0, 0, 0, 0], truths, weights)[0] == pytest.approx(0.5)


def test_a_class_threshold_decides_which_boxes_count(images_dir: Path) -> None:
    from vpagent.images import load_image

    photo = load_image(images_dir / "two_dogs.jpg")
    base = Calibration(score_threshold=0.5, nms_iou=0.5, tiles=2, flip=False)
    dogs = SSDCocoDetector(calibration=base).detect(photo, ["dog"])
    assert dogs
    strict = base.model_copy(update={"class_thresholds": {"dog": 0.999}})
    assert SSDCocoDetector(calibration=strict).detect(photo, ["dog"]) == []
    # an explicit threshold is one bar for every class: the per-class ones are dropped
    assert len(
        SSDCocoDetector(score_threshold=0.5, calibration=strict).detect(photo, ["dog"])
    ) == len(dogs)


def test_calibrate_counts_writes_a_calibration_the_detector_reads(
    coco: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "coco"
    (folder / "images").mkdir(parents=True)
    dataset = json.loads((coco / "instances.json").read_text())
    keep = dataset["images"][:6]
    for image in keep:
        (folder / "images" / image["file_name"]).symlink_to(coco / "images" / image["file_name"])
    ids = {image["id"] for image in keep}
    dataset["images"] = keep
    dataset["annotations"] = [a for a in dataset["annotations"] if a["image_id"] in ids]
    (folder / "instances.json").write_text(json.dumps(dataset))
    for name, grid in {"TILE_GRIDS": (0,), "FLIPS": (False,), "NMS_IOUS": (0.5,)}.items():
        monkeypatch.setattr(calibration, name, grid)
    monkeypatch.setattr(calibration, "THRESHOLDS", (0.3, 0.5))
    out = tmp_path / "calibration.json"

    result = CliRunner().invoke(
        app, ["distill", "calibrate-counts", str(folder), "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    chosen = load_calibration(out)
    assert chosen.tiles == 0 and chosen.score_threshold in (0.3, 0.5)
    record = json.loads(out.read_text())
    assert record["split"]["train_photos"] + record["split"]["validation_photos"] <= 6
    assert len(record["search"]) == 2  # one line per setting tried
    best = max(record["search"], key=lambda line: line["balanced_accuracy"])
    assert best["score_threshold"] == chosen.score_threshold
    # as many drawn absent categories as counted ones, plus the confusable ones
    assert record["train_absent"]["n"] >= record["train"]["n"] > 0
    assert "counts exact" in result.output


def test_a_recalibration_starts_a_fresh_tool_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    from vpagent.config import load_settings
    from vpagent.tools import toolbox
    from vpagent.tools.offline import detector

    config = load_settings().toolbox_config()
    before = toolbox.results_namespace(config)
    recalibrated = detector.CALIBRATION.model_copy(update={"score_threshold": 0.42})
    monkeypatch.setattr(detector, "CALIBRATION", recalibrated)
    assert toolbox.results_namespace(config) != before
