"""The embedded student's richer eyes: several EfficientNet stages, SSD-MobileNet feature maps.

The feature maps come from the real packaged EfficientNet-Lite3 and SSD-MobileNet-v2; only the
language model is a tiny random-init Llama.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.student_tiny import cli_train_and_evaluate
from vpagent.student import eyes as eyes_module
from vpagent.student.base import StudentError
from vpagent.student.eyes import GRID_EYES, SSD_EYES, STAGES_EYES, encoder_for
from vpagent.student.feature_maps import FEATURE_DIM, NUM_IMAGE_TOKENS, area_pool
from vpagent.student.students import EmbeddedStudent, load_student
from vpagent.tools.errors import ModelUnavailable

PROMPT = "How many dogs are there?"
WIDTHS = {STAGES_EYES: 1280 + 48 + 136 + 384, SSD_EYES: 1280 + 576 + 1280 + 512}


def test_area_pooling_keeps_the_mean_under_each_cell() -> None:
    rng = np.random.default_rng(0)
    fine = rng.random((18, 18, 3), dtype=np.float32)
    blocks = fine.reshape(9, 2, 9, 2, 3).mean(axis=(1, 3)).reshape(81, 3)
    np.testing.assert_allclose(area_pool(fine), blocks, atol=1e-6)  # 2x2 blocks exactly
    same = rng.random((9, 9, 2), dtype=np.float32)
    np.testing.assert_allclose(area_pool(same), same.reshape(81, 2), atol=1e-6)
    odd = rng.random((35, 35, 4), dtype=np.float32)
    np.testing.assert_allclose(area_pool(odd).mean(axis=0), odd.mean(axis=(0, 1)), atol=1e-5)
    coarse = np.zeros((5, 5, 1), dtype=np.float32)
    coarse[0, 0] = 1.0  # the top-left fifth of the image
    pooled = area_pool(coarse).reshape(9, 9)
    assert pooled[0, 0] == pytest.approx(1.0)  # the first ninth lies inside the first fifth
    assert pooled[0, 1] == pytest.approx(0.8)  # the second ninth (1/9 to 2/9): 4/5 inside
    assert pooled[0, 2] == 0.0 and pooled[2, 0] == 0.0


@pytest.mark.parametrize("eyes", [STAGES_EYES, SSD_EYES])
def test_richer_eyes_give_81_tokens_that_start_with_the_grid(
    eyes: str, tmp_path: Path, images_dir: Path
) -> None:
    photo = images_dir / "two_dogs.jpg"
    grid = encoder_for(GRID_EYES, cache_dir=tmp_path).encode(photo)
    encoder = encoder_for(eyes, cache_dir=tmp_path)
    features = encoder.encode(photo)
    assert encoder.feature_dim == WIDTHS[eyes]
    assert features.shape == (NUM_IMAGE_TOKENS, WIDTHS[eyes]) and features.dtype == np.float32
    np.testing.assert_allclose(features[:, :FEATURE_DIM], grid, atol=1e-6)
    assert np.abs(features).max() <= 1.0
    start = 0
    for source in encoder.sources:
        for spec in source.maps:  # every map carries signal, none is a block of zeros
            assert features[:, start : start + spec.channels].std() > 0.01, spec.layer
            start += spec.channels
    assert len(list(tmp_path.rglob("*.npy"))) == 2  # one cache entry per encoder
    np.testing.assert_array_equal(encoder_for(eyes, cache_dir=tmp_path).encode(photo), features)
    other = encoder.encode(images_dir / "bus.jpg")
    assert not np.allclose(features[:, FEATURE_DIM:], other[:, FEATURE_DIM:])


def _logits(student: EmbeddedStudent, photo: Path) -> torch.Tensor:
    inputs = student.processor.prompt_inputs([photo], [PROMPT])
    return student.model.eval()(**inputs).logits


def test_a_stages_student_reads_81_wider_tokens_and_round_trips(
    tmp_path: Path, lm_folder: Path, images_dir: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=STAGES_EYES)
    config = student.model.config
    assert config.vision_feature_dim == WIDTHS[STAGES_EYES]
    assert config.image_encoder == "efficientnet-lite3-stages"
    assert student.model.projector.linear_1.in_features == WIDTHS[STAGES_EYES]
    photo = images_dir / "two_dogs.jpg"
    inputs = student.processor.prompt_inputs([photo], [PROMPT])
    assert int((inputs["input_ids"] == student.processor.image_token_id).sum()) == 81
    assert inputs["image_features"].shape == (1, 81, WIDTHS[STAGES_EYES])
    before = _logits(student, photo)
    student.save(tmp_path / "s")
    loaded = load_student(tmp_path / "s")
    assert loaded.eyes == STAGES_EYES
    assert loaded.processor.encoder.name == "efficientnet-lite3-stages"
    torch.testing.assert_close(_logits(loaded, photo), before)


def test_a_student_whose_projector_does_not_fit_its_eyes_is_refused(
    tmp_path: Path, lm_folder: Path
) -> None:
    EmbeddedStudent.build(str(lm_folder), eyes=STAGES_EYES).save(tmp_path / "s")
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    (tmp_path / "s" / "config.json").write_text(json.dumps({**config, "eyes": GRID_EYES}))
    with pytest.raises(StudentError, match=r"reads 1848 features per image token.* give 1280"):
        load_student(tmp_path / "s")
    other_encoder = {**config, "vision_feature_dim": FEATURE_DIM, "image_encoder": "resnet-50"}
    (tmp_path / "s" / "config.json").write_text(json.dumps({**other_encoder, "eyes": GRID_EYES}))
    with pytest.raises(StudentError, match="of resnet-50, but its 'grid' eyes give 1280"):
        load_student(tmp_path / "s")


def test_unknown_eyes_are_refused_before_any_model_loads(tmp_path: Path) -> None:
    with pytest.raises(StudentError, match="eyes must be one of grid, grid\\+regions, stages"):
        EmbeddedStudent.build(str(tmp_path / "no-such-model"), eyes="x-ray")


def test_ssd_eyes_without_the_detector_is_a_clear_error(
    lm_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(key: str) -> Path:
        raise ModelUnavailable(f"the packaged file {key} is not installed")

    monkeypatch.setattr(eyes_module.weights, "packaged_file", missing)
    with pytest.raises(StudentError, match=r"'grid\+ssd' eyes need .*SSD-MobileNet.*ssd\.graph"):
        EmbeddedStudent.build(str(lm_folder), eyes=SSD_EYES)


def test_cli_trains_and_evaluates_an_ssd_student(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    config = cli_train_and_evaluate(export, lm_folder, tmp_path / "ckpt", SSD_EYES)
    assert config["eyes"] == SSD_EYES and config["vision_feature_dim"] == WIDTHS[SSD_EYES]
