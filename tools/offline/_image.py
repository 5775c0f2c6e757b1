"""Small image helpers shared by the offline backends (RGB uint8 numpy arrays)."""

from __future__ import annotations

import numpy as np

from vpagent.tools.types import Box


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous HxWx3 uint8 view of ``image`` (gray and RGBA are converted)."""
    array = np.asarray(image)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = array[:, :, :3]
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {array.shape}")
    return np.ascontiguousarray(array)


def int_box(box: Box | None, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel bounds of ``box`` clipped to the image, at least 1 pixel wide and tall."""
    if box is None:
        return 0, 0, width, height
    x0 = int(np.clip(np.floor(box.x0), 0, max(width - 1, 0)))
    y0 = int(np.clip(np.floor(box.y0), 0, max(height - 1, 0)))
    x1 = int(np.clip(np.ceil(box.x1), x0 + 1, width))
    y1 = int(np.clip(np.ceil(box.y1), y0 + 1, height))
    return x0, y0, x1, y1


def crop(image: np.ndarray, box: Box | None) -> np.ndarray:
    """The pixels of ``box`` (clipped to the image); the whole image for None."""
    height, width = image.shape[:2]
    x0, y0, x1, y1 = int_box(box, width, height)
    return image[y0:y1, x0:x1]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0
