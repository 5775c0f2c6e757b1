"""HFSamSegmenter on a tiny random transformers SamModel saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import SEGMENT_BOXES, SEGMENT_IMAGES, SEGMENT_POINTS, build_sam_hf
from vpagent.tools.hf.sam import HFSamSegmenter
from vpagent.tools.types import Mask

pytestmark = pytest.mark.hf

IMAGES, BOXES, POINTS = SEGMENT_IMAGES, SEGMENT_BOXES, SEGMENT_POINTS


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    return HFSamSegmenter(str(build_sam_hf(tmp_path_factory.mktemp("samhf"))), device="cpu")


def test_masks_are_image_sized(segmenter):
    for image, box, point in zip(IMAGES, BOXES, POINTS, strict=True):
        mask = segmenter.segment(image, box=box, point=point)
        assert isinstance(mask, Mask)
        assert mask.pixels.dtype == bool and mask.pixels.shape == image.shape[:2]
        assert 0.0 <= mask.score <= 1.0
    whole = segmenter.segment(IMAGES[0])
    assert whole.meta["whole_image_prompt"] and whole.pixels.shape == IMAGES[0].shape[:2]


def test_batched_equals_unbatched(segmenter):
    batched = segmenter.segment_batch(IMAGES, BOXES, POINTS)
    for image, box, point, got in zip(IMAGES, BOXES, POINTS, batched, strict=True):
        single = segmenter.segment(image, box=box, point=point)
        np.testing.assert_array_equal(got.pixels, single.pixels)
        assert got.score == pytest.approx(single.score, abs=1e-5)


def test_info(segmenter):
    assert segmenter.info().role == "segmenter" and segmenter.info().backend == "sam-hf"
