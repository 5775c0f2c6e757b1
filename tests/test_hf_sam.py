"""HFSamSegmenter on a tiny random transformers SamModel saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from hf_tiny import build_sam_hf, test_image

from tools.hf.sam import HFSamSegmenter
from tools.types import Box, Mask

pytestmark = pytest.mark.hf

IMAGES = [
    test_image(height=40, width=64),
    test_image(height=50, width=30, seed=1),
    test_image(seed=2),
]
BOXES = [Box.of([5, 5, 30, 30]), None, Box.of([-10, 3, 200, 40])]  # the last one is clipped
POINTS = [None, (10.0, 20.0), (20.0, 20.0)]


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
