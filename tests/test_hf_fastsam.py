"""UltralyticsSegmenter: FastSAM (an untrained YOLOv8n-seg saved as a FastSAM checkpoint) and
ultralytics SAM (a tiny SAMModel registered under its own file name, as sam_b.pt is)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics")

from tests.fixtures.hf_tiny import (
    SEGMENT_BOXES,
    SEGMENT_IMAGES,
    SEGMENT_POINTS,
    ULTRALYTICS_TINY_SAM_NAME,
    build_mobile_sam,
    build_tiny_ultralytics_sam,
    build_yolo,
    save_tiny_ultralytics_sam,
)
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf.fastsam import UltralyticsSegmenter
from vpagent.tools.types import Box, Mask

pytestmark = pytest.mark.hf

IMAGES, BOXES, POINTS = SEGMENT_IMAGES, SEGMENT_BOXES, SEGMENT_POINTS


@pytest.fixture(scope="module")
def fastsam(tmp_path_factory):
    path = build_yolo(tmp_path_factory.mktemp("fastsam") / "FastSAM-tiny.pt", "yolov8n-seg.yaml")
    return UltralyticsSegmenter(str(path), device="cpu", conf=0.0, imgsz=128)


@pytest.fixture(scope="module")
def sam_ultralytics(tmp_path_factory):
    from ultralytics.models.sam.build import sam_model_map

    checkpoint = save_tiny_ultralytics_sam(tmp_path_factory.mktemp("usam"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sam_model_map, ULTRALYTICS_TINY_SAM_NAME, build_tiny_ultralytics_sam)
        segmenter = UltralyticsSegmenter(str(checkpoint), device="cpu")
        segmenter.load()
        yield segmenter


def _check(masks):
    assert len(masks) == len(IMAGES)
    for image, mask in zip(IMAGES, masks, strict=True):
        assert isinstance(mask, Mask)
        assert mask.pixels.dtype == bool and mask.pixels.shape == image.shape[:2]
        assert 0.0 <= mask.score <= 1.0


def test_kind_from_file_name():
    assert UltralyticsSegmenter("/m/FastSAM-s.pt").kind == "fastsam"
    assert UltralyticsSegmenter("/m/mobile_sam.pt").kind == "mobilesam"
    assert UltralyticsSegmenter("/m/sam_b.pt").kind == "sam-ultralytics"
    assert UltralyticsSegmenter("/m/x.pt", kind="fastsam").info().backend == "fastsam"
    with pytest.raises(ValueError):
        UltralyticsSegmenter("/m/x.pt", kind="nope")


def test_fastsam_masks_are_image_sized(fastsam):
    _check(
        [fastsam.segment(i, box=b, point=p) for i, b, p in zip(IMAGES, BOXES, POINTS, strict=True)]
    )


def test_fastsam_batched_equals_unbatched(fastsam):
    batched = fastsam.segment_batch(IMAGES, BOXES, POINTS)
    _check(batched)
    for image, box, point, got in zip(IMAGES, BOXES, POINTS, batched, strict=True):
        single = fastsam.segment(image, box=box, point=point)
        assert np.mean(got.pixels != single.pixels) < 0.002
        assert got.score == pytest.approx(single.score, abs=1e-4)


def test_sam_masks_are_image_sized(sam_ultralytics):
    assert sam_ultralytics.kind == "sam-ultralytics"
    _check(
        [
            sam_ultralytics.segment(i, box=b, point=p)
            for i, b, p in zip(IMAGES, BOXES, POINTS, strict=True)
        ]
    )


def test_sam_batched_equals_unbatched(sam_ultralytics):
    batched = sam_ultralytics.segment_batch(IMAGES, BOXES, POINTS)
    _check(batched)
    for image, box, point, got in zip(IMAGES, BOXES, POINTS, batched, strict=True):
        single = sam_ultralytics.segment(image, box=box, point=point)
        np.testing.assert_array_equal(got.pixels, single.pixels)


def test_sam_matches_ultralytics_predictor_for_boxes(sam_ultralytics):
    """Our module-level path reproduces ultralytics' own SAM.predict (box prompt, one mask)."""
    for image, box in zip(IMAGES, [Box.of([5, 5, 30, 30]), Box.of([2, 8, 25, 45])], strict=False):
        ours = sam_ultralytics.segment(image, box=box)
        result = sam_ultralytics._yolo.predict(
            np.ascontiguousarray(image[:, :, ::-1]),
            bboxes=[box.as_list()],
            conf=0.0,
            imgsz=64,
            device="cpu",
            verbose=False,
        )[0]
        theirs = result.masks.data[0].cpu().numpy().astype(bool)
        assert np.mean(ours.pixels != theirs) < 0.002
        assert ours.score == pytest.approx(float(result.boxes.conf[0]), abs=1e-4)


def test_unknown_sam_file_name_is_unavailable(tmp_path):
    weights = tmp_path / "my_sam.pt"
    weights.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable, match="file name"):
        UltralyticsSegmenter(str(weights), device="cpu").load()


@pytest.mark.slow
def test_real_mobile_sam_architecture(tmp_path):
    """The released MobileSAM architecture (TinyViT at 1024 px): ~10 s on 2 CPU cores."""
    segmenter = UltralyticsSegmenter(str(build_mobile_sam(tmp_path)), device="cpu")
    masks = segmenter.segment_batch(IMAGES[:2], BOXES[:2], POINTS[:2])
    assert segmenter.kind == "mobilesam"
    for image, mask in zip(IMAGES, masks, strict=False):
        assert mask.pixels.shape == image.shape[:2]
