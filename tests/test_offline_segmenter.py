"""GrabCut segmenter stand-in, seeded by a box or a point."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.types import Box, Mask

pytest.importorskip("cv2")

from vpagent.tools.offline.colors import color_distribution, name_color
from vpagent.tools.offline.segmenter import GrabCutSegmenter


@pytest.fixture(scope="module")
def segmenter() -> GrabCutSegmenter:
    return GrabCutSegmenter()


def _disk_scene() -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:200, 0:300]
    disk = (yy - 100) ** 2 + (xx - 150) ** 2 < 60**2
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[:] = (40, 140, 60)
    image[disk] = (230, 200, 30)
    noise = np.random.default_rng(0).integers(-12, 12, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), disk


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_box_seed_on_a_synthetic_disk(segmenter: GrabCutSegmenter) -> None:
    image, disk = _disk_scene()
    mask = segmenter.segment(image, box=Box.of([80, 30, 220, 170]))
    assert mask.pixels.shape == disk.shape and mask.pixels.dtype == bool
    assert _iou(mask.pixels, disk) > 0.9 and mask.score == 1.0


def test_point_seed_on_a_synthetic_disk(segmenter: GrabCutSegmenter) -> None:
    image, disk = _disk_scene()
    mask = segmenter.segment(image, point=(150, 100))
    assert _iou(mask.pixels, disk) > 0.85


@pytest.mark.slow
def test_truck_mask_stays_in_its_box(segmenter: GrabCutSegmenter, images_dir: Path) -> None:
    image = load_image(images_dir / "truck.jpg")
    box = Box.of([104, 278, 1722, 858])  # the detector's truck box
    mask = segmenter.segment(image, box=box)
    x0, y0, x1, y1 = (int(v) for v in box.as_list())
    inside = mask.pixels[y0:y1, x0:x1].sum() / mask.area
    fill = mask.area / box.area
    assert inside > 0.99 and 0.5 < fill < 0.95
    # GrabCut keeps the white body, not the red wall and grey road inside the box.
    assert name_color(image, mask=mask.pixels, object_name="truck") == "white"
    assert color_distribution(image, mask=mask.pixels)["red"] < 0.02


@pytest.mark.slow
def test_dog_mask_mostly_inside_the_seed_box(segmenter: GrabCutSegmenter, images_dir: Path) -> None:
    image = load_image(images_dir / "two_dogs.jpg")
    box = Box.of([552, 218, 769, 592])
    mask = segmenter.segment(image, box=box)
    x0, y0, x1, y1 = (int(v) for v in box.as_list())
    assert mask.pixels[y0:y1, x0:x1].sum() / mask.area > 0.95
    assert 0.3 < mask.area / box.area < 0.9


def test_tiny_box_falls_back_to_an_ellipse(segmenter: GrabCutSegmenter) -> None:
    image, _ = _disk_scene()
    mask = segmenter.segment(image, box=Box.of([10, 10, 12, 12]))
    assert mask.score == 0.0 and mask.meta["fallback"] == "ellipse" and mask.area > 0


def test_no_seed_uses_the_whole_image_and_masks_round_trip(segmenter: GrabCutSegmenter) -> None:
    image, disk = _disk_scene()
    masks = segmenter.segment_batch(
        [image, image], [None, Box.of([80, 30, 220, 170])], [None, None]
    )
    assert len(masks) == 2 and _iou(masks[0].pixels, disk) > 0.8
    again = Mask.from_rle(masks[1].to_rle())
    np.testing.assert_array_equal(again.pixels, masks[1].pixels)


def test_info() -> None:
    info = GrabCutSegmenter().info()
    assert info.stand_in and info.backend == "grabcut" and "SAM" in info.note
