"""The embedded student's region tokens (``eyes = "grid+regions"``) on a tiny random Llama.

The grid features come from the real packaged EfficientNet-Lite3 and the regions from the real
offline SSD-MobileNet COCO detector; only the language model is a tiny random-init Llama.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tests.fixtures.student_tiny import build_tiny_llava, cli_train_and_evaluate
from vpagent.cli import app
from vpagent.distill.student.train import TrainOptions, _check_resume, train
from vpagent.student import eyes as eyes_module
from vpagent.student.base import StudentError
from vpagent.student.eyes import REGION_EYES
from vpagent.student.feature_maps import GRID, NUM_IMAGE_TOKENS
from vpagent.student.regions import (
    NO_REGION,
    NUM_REGIONS,
    RegionDetector,
    Regions,
    pool,
    region_inputs,
)
from vpagent.student.students import STUDENT_FILE, EmbeddedStudent, load_student
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline.coco_names import COCO_CLASSES
from vpagent.tools.offline.detector import SSDCocoDetector

runner = CliRunner()
PROMPT = "How many people are there?"


@pytest.fixture
def detector_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the detector's passes (one entry per ``detect_all`` call)."""
    calls: list[int] = []
    original = SSDCocoDetector.detect_all

    def counted(self: SSDCocoDetector, image: np.ndarray) -> list:
        calls.append(1)
        return original(self, image)

    monkeypatch.setattr(SSDCocoDetector, "detect_all", counted)
    return calls


def _logits(student: EmbeddedStudent, image: Path | np.ndarray) -> torch.Tensor:
    inputs = student.processor.prompt_inputs([image], [PROMPT])
    return student.model.eval()(**inputs).logits


def test_detections_are_normalised_best_first_and_cached(
    tmp_path: Path, images_dir: Path, detector_calls: list[int]
) -> None:
    photo = images_dir / "zidane.jpg"
    in_memory = RegionDetector()
    found = in_memory.detect(photo)
    in_memory.detect(photo)
    assert detector_calls == [1]
    assert 1 <= len(found.labels) <= NUM_REGIONS
    assert COCO_CLASSES[int(found.labels[0])] == "person"
    assert found.boxes.min() >= 0 and found.boxes.max() <= 1
    assert np.all(found.boxes[:, 2] > found.boxes[:, 0]) and np.all(found.scores >= 0.3)
    assert list(found.scores) == sorted(found.scores, reverse=True)
    RegionDetector(cache_dir=tmp_path).detect(photo)
    assert detector_calls == [1, 1] and len(list(tmp_path.rglob("*.json"))) == 1
    again = RegionDetector(cache_dir=tmp_path).detect(photo)  # a new process: from disk
    assert detector_calls == [1, 1]
    np.testing.assert_array_equal(again.boxes, found.boxes)
    np.testing.assert_array_equal(again.labels, found.labels)


def test_pooling_weights_cells_by_overlap() -> None:
    grid = np.arange(GRID * GRID * 2, dtype=np.float32).reshape(GRID * GRID, 2)
    cell = 1 / GRID
    boxes = np.array(
        [
            [0, 0, cell, cell],  # exactly the top-left cell
            [0.5 * cell, 0, 1.5 * cell, cell],  # half of cell 0, half of cell 1
            [0, 0, 1, 1],  # everything
            [0, 0, 2 * cell, cell],  # cells 0 and 1 equally
        ],
        dtype=np.float32,
    )
    pooled = pool(grid, boxes)
    np.testing.assert_allclose(pooled[0], grid[0], atol=1e-4)
    np.testing.assert_allclose(pooled[1], (grid[0] + grid[1]) / 2, atol=1e-4)
    np.testing.assert_allclose(pooled[2], grid.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(pooled[3], pooled[1], atol=1e-4)


def test_region_student_has_81_plus_r_tokens(lm_folder: Path, images_dir: Path) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    assert student.modules_to_save == ["projector", "region_embedding"]
    inputs = student.processor.prompt_inputs([images_dir / "zidane.jpg"], [PROMPT])
    slots = int((inputs["input_ids"] == student.processor.image_token_id).sum())
    assert slots == NUM_IMAGE_TOKENS + NUM_REGIONS == 91
    assert inputs["region_features"].shape == (1, NUM_REGIONS, 1280)
    assert inputs["region_labels"].dtype == torch.long
    tokens = student.model.get_image_features(
        **{k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    )
    assert tokens.shape == (1, 91, student.model.config.text_config.hidden_size)
    grid = EmbeddedStudent.build(str(lm_folder))
    grid_inputs = grid.processor.prompt_inputs([images_dir / "zidane.jpg"], [PROMPT])
    assert int((grid_inputs["input_ids"] == grid.processor.image_token_id).sum()) == 81
    assert "region_features" not in grid_inputs and grid.model.region_embedding is None


def test_an_image_without_detections_gets_r_empty_tokens(lm_folder: Path) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    with torch.no_grad():
        student.model.region_embedding.empty.normal_()
    blank = np.full((240, 320, 3), 128, dtype=np.uint8)
    found = student.processor.regions.detect(blank)
    assert len(found.labels) == 0
    inputs = student.processor.image_inputs(blank)
    assert list(inputs["region_labels"]) == [NO_REGION] * NUM_REGIONS
    batch = {k: torch.from_numpy(v)[None] for k, v in inputs.items()}
    tokens = student.model.get_image_features(**batch)[0, NUM_IMAGE_TOKENS:]
    empty = student.model.region_embedding.empty.detach()
    torch.testing.assert_close(tokens, empty.expand(NUM_REGIONS, -1))


def test_region_inputs_pad_and_cut_to_r_slots() -> None:
    grid = np.random.default_rng(0).random((GRID * GRID, 4), dtype=np.float32)
    many = Regions(
        boxes=np.tile(np.array([[0.1, 0.2, 0.5, 0.6]], dtype=np.float32), (12, 1)),
        labels=np.arange(12, dtype=np.int64),
        scores=np.linspace(0.9, 0.4, 12, dtype=np.float32),
    )
    cut = region_inputs(grid, many, 10)
    assert list(cut["region_labels"]) == list(range(10))
    np.testing.assert_allclose(
        cut["region_geometry"][0], [0.1, 0.2, 0.5, 0.6, 0.4, 0.4, 0.16, 0.9], atol=1e-6
    )
    few = Regions(boxes=many.boxes[:3], labels=many.labels[:3], scores=many.scores[:3])
    padded = region_inputs(grid, few, 10)
    assert list(padded["region_labels"]) == [0, 1, 2] + [NO_REGION] * 7
    assert not padded["region_features"][3:].any() and padded["region_features"][:3].any()


def test_save_load_round_trip_keeps_the_region_weights(
    tmp_path: Path, lm_folder: Path, images_dir: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    with torch.no_grad():
        student.model.region_embedding.empty.normal_()
    photo = images_dir / "zidane.jpg"
    before = _logits(student, photo)
    student.save(tmp_path / "s")
    with safe_open(tmp_path / "s" / "model.safetensors", "pt") as saved:
        keys = set(saved.keys())
    assert {"region_embedding.classes.weight", "region_embedding.empty"} <= keys
    assert json.loads((tmp_path / "s" / STUDENT_FILE).read_text())["eyes"] == REGION_EYES
    loaded = load_student(tmp_path / "s")
    assert loaded.eyes == REGION_EYES and loaded.processor.num_image_tokens == 91
    torch.testing.assert_close(_logits(loaded, photo), before)
    # the regions matter: other labels, other logits
    inputs = loaded.processor.prompt_inputs([photo], [PROMPT])
    inputs["region_labels"] = torch.where(inputs["region_labels"] >= 0, 5, NO_REGION)
    assert not torch.allclose(loaded.model(**inputs).logits, before)


def test_an_old_grid_student_still_loads(tmp_path: Path, lm_folder: Path, images_dir: Path) -> None:
    student = EmbeddedStudent.build(str(lm_folder))
    photo = images_dir / "two_dogs.jpg"
    before = _logits(student, photo)
    folder = tmp_path / "old"
    student.save(folder)
    new_fields = ("eyes", "num_regions", "region_score_threshold", "num_region_classes")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({k: v for k, v in config.items() if k not in new_fields})
    )  # as saved before region tokens existed
    meta = json.loads((folder / STUDENT_FILE).read_text())
    (folder / STUDENT_FILE).write_text(json.dumps({k: v for k, v in meta.items() if k != "eyes"}))
    loaded = load_student(folder)
    assert loaded.eyes == "grid" and loaded.processor.regions is None
    assert loaded.model.region_embedding is None
    torch.testing.assert_close(_logits(loaded, photo), before)


def test_no_detector_is_a_clear_error_not_a_grid_student(
    tmp_path: Path, lm_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved = tmp_path / "s"
    EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES).save(saved)

    def missing(key: str) -> Path:
        raise ModelUnavailable(f"the packaged file {key} is not installed")

    monkeypatch.setattr(eyes_module.weights, "packaged_file", missing)
    with pytest.raises(StudentError, match=r"SSD-MobileNet COCO detector.*ssd\.graph"):
        EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    with pytest.raises(StudentError, match="SSD-MobileNet COCO detector"):
        load_student(saved)


def test_overfit_loss_falls_with_region_tokens(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    result = train(
        TrainOptions(data=export, out=tmp_path / "o", max_steps=5, save_steps=100, lr=5e-3,
                     batch_size=8, lora=False),
        progress=False,
        student=student,
    )  # fmt: skip
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.3


def test_lora_trains_the_region_embeddings_in_full(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=REGION_EYES)
    before = {k: v.clone() for k, v in student.model.region_embedding.state_dict().items()}
    train(
        TrainOptions(data=export, out=tmp_path / "o", max_steps=2, save_steps=100, lr=5e-3,
                     batch_size=8, lora=True),
        progress=False,
        student=student,
    )  # fmt: skip
    saved = load_student(tmp_path / "o").model.region_embedding.state_dict()
    for name in ("classes.weight", "geometry.weight", "empty"):
        assert not torch.allclose(saved[name], before[name]), name  # merged into the save


def test_cli_trains_and_evaluates_a_region_student(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    out = tmp_path / "ckpt"
    assert cli_train_and_evaluate(export, lm_folder, out, REGION_EYES)["eyes"] == REGION_EYES
    assert json.loads((out / STUDENT_FILE).read_text())["eyes"] == REGION_EYES

    other_eyes = runner.invoke(
        app,
        ["distill", "train", "--data", str(export), "--out", str(tmp_path / "more"),
         "--student", str(out), "--eyes", "grid", "--max-steps", "1"],
    )  # fmt: skip
    assert other_eyes.exit_code == 2 and "sees 'grid+regions', not 'grid'" in other_eyes.output
    vlm = build_tiny_llava(tmp_path / "llava")
    hf = runner.invoke(
        app,
        ["distill", "train", "--data", str(export), "--out", str(tmp_path / "hf"),
         "--student", str(vlm), "--eyes", "grid+regions", "--max-steps", "1"],
    )  # fmt: skip
    assert hf.exit_code == 2 and "--eyes is for the embedded student" in hf.output
    bad = runner.invoke(
        app,
        ["distill", "train", "--data", str(export), "--out", str(tmp_path / "b"), "--eyes", "x"],
    )
    assert bad.exit_code == 2 and "eyes" in bad.output


def test_resume_refuses_other_eyes_and_reads_old_runs_as_grid(tmp_path: Path) -> None:
    options = TrainOptions(data=tmp_path, out=tmp_path, resume=True)
    old = {"student": "embedded", "kind": "embedded", "model_type": "vpagent_student", "lora": True}
    (tmp_path / "run.json").write_text(json.dumps(old))  # written before --eyes existed
    _check_resume(options, {**old, "eyes": "grid"})
    with pytest.raises(StudentError, match="eyes: 'grid', now 'grid\\+regions'"):
        _check_resume(options, {**old, "eyes": REGION_EYES})
