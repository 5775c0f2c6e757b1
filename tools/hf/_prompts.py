"""Prompt handling shared by the SAM-family segmenters.

One prompt per image: a box, a point, or both. With neither, the whole image is the box (SAM
then segments the most salient object). A point alone is ambiguous (part, object, group), so
SAM is asked for its three candidate masks and the one with the highest predicted IoU wins; a
box asks for a single mask, as upstream recommends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vpagent.tools.hf._base import as_rgb, check_lengths
from vpagent.tools.types import Box


@dataclass(frozen=True)
class Prompt:
    box: np.ndarray | None  # (4,) xyxy in original image pixels
    point: np.ndarray | None  # (2,) xy in original image pixels
    multimask: bool
    whole_image: bool = False


def make_prompt(
    box: Box | None, point: tuple[float, float] | None, width: int, height: int
) -> Prompt:
    """Clip the prompt to the image and decide whether to ask for several masks."""
    if box is None and point is None:
        return Prompt(np.array([0.0, 0.0, width, height]), None, multimask=False, whole_image=True)
    box_array = None
    if box is not None:
        clipped = box.clip(width, height)
        box_array = np.array(clipped.as_list(), dtype=np.float64)
    point_array = None
    if point is not None:
        x, y = (float(v) for v in point)
        point_array = np.array([min(max(x, 0.0), width - 1), min(max(y, 0.0), height - 1)])
    return Prompt(box_array, point_array, multimask=box_array is None)


def prepare_batch(
    images: list[np.ndarray], boxes: list[Box | None], points: list[tuple[float, float] | None]
) -> tuple[list[np.ndarray], list[Prompt]]:
    """Check a segment_batch call's lengths; return RGB images and one prompt per image."""
    check_lengths("segment_batch", images, boxes, points)
    rgbs = [as_rgb(image) for image in images]
    prompts = [
        make_prompt(box, point, image.shape[1], image.shape[0])
        for image, box, point in zip(rgbs, boxes, points, strict=True)
    ]
    return rgbs, prompts
