"""SamPredictorSegmenter on a tiny random segment-anything Sam saved as a checkpoint file."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("segment_anything")

from tests.fixtures.hf_tiny import (
    SEGMENT_ANYTHING_TINY_TYPE,
    SEGMENT_BOXES,
    SEGMENT_IMAGES,
    SEGMENT_POINTS,
    build_tiny_segment_anything,
    save_tiny_segment_anything,
)
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf.segment_anything import SamPredictorSegmenter, model_type_from_name
from vpagent.tools.types import Mask

pytestmark = pytest.mark.hf

IMAGES, BOXES, POINTS = SEGMENT_IMAGES, SEGMENT_BOXES, SEGMENT_POINTS


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    from segment_anything import sam_model_registry

    checkpoint = save_tiny_segment_anything(tmp_path_factory.mktemp("sam") / "sam_tiny.pth")
    with pytest.MonkeyPatch.context() as patch:
        # the tiny architecture joins the official registry, as vit_b/l/h are there
        patch.setitem(sam_model_registry, SEGMENT_ANYTHING_TINY_TYPE, build_tiny_segment_anything)
        segmenter = SamPredictorSegmenter(
            str(checkpoint), device="cpu", model_type=SEGMENT_ANYTHING_TINY_TYPE
        )
        segmenter.load()
        yield segmenter


def test_model_type_from_file_name():
    assert model_type_from_name("/m/sam_vit_h_4b8939.pth") == "vit_h"
    assert model_type_from_name("sam_vit_b_01ec64.pth") == "vit_b"
    assert model_type_from_name("weights.pth") is None


def test_masks_are_image_sized(segmenter):
    for image, box, point in zip(IMAGES, BOXES, POINTS, strict=True):
        mask = segmenter.segment(image, box=box, point=point)
        assert isinstance(mask, Mask)
        assert mask.pixels.dtype == bool and mask.pixels.shape == image.shape[:2]
        assert 0.0 <= mask.score <= 1.0
    assert segmenter.segment(IMAGES[0]).meta["whole_image_prompt"]


def test_batched_path_equals_official_predictor(segmenter):
    batched = segmenter.segment_batch(IMAGES, BOXES, POINTS)
    for image, box, point, got in zip(IMAGES, BOXES, POINTS, batched, strict=True):
        single = segmenter.segment(image, box=box, point=point)  # SamPredictor
        assert np.mean(got.pixels != single.pixels) < 0.002
        assert got.score == pytest.approx(single.score, abs=1e-4)


def test_unknown_model_type_is_unavailable(tmp_path):
    checkpoint = save_tiny_segment_anything(tmp_path / "weights.pth")
    with pytest.raises(ModelUnavailable, match="model_type"):
        SamPredictorSegmenter(str(checkpoint), device="cpu").load()


def test_wrong_architecture_is_unavailable(tmp_path):
    checkpoint = save_tiny_segment_anything(tmp_path / "sam_vit_b_tiny.pth")
    with pytest.raises(ModelUnavailable, match="does not load"):
        SamPredictorSegmenter(str(checkpoint), device="cpu").load()  # a tiny file is no vit_b
