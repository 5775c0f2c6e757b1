"""Segmenter stand-in: OpenCV GrabCut seeded by a box or a point (no SAM weights are packaged).

GrabCut fits colour models (Gaussian mixtures) to "object" and "background" pixels and cuts
along strong edges. Seeds:

- box: everything outside the box is background, inside is "probably object" (GrabCut's rect
  mode); the mask can never leave the box;
- point: a small disk around the point is object, a window around it "probably object", the
  rest "probably background"; the connected part that holds the point is kept;
- neither: the whole image minus a thin border, as a box.

Work happens on a crop around the seed, downscaled to ``max_side`` pixels, and the mask is
scaled back. The result keeps the largest connected part (the one under the point, for points)
with holes filled. If GrabCut finds nothing the box's inscribed ellipse is returned with
score 0 and ``meta["fallback"] = "ellipse"``, so callers can tell.
"""

from __future__ import annotations

import cv2
import numpy as np

from vpagent.tools.offline._image import as_rgb, int_box
from vpagent.tools.roles import Image, Segmenter
from vpagent.tools.types import Box, Mask, ToolInfo

ITERATIONS = 4
MAX_SIDE = 360  # GrabCut cost grows with pixels; this keeps one call near 0.1-0.3 s on 2 cores
CONTEXT = 0.2  # background margin around a box, as a fraction of its size
POINT_WINDOW = 0.3  # "probably object" window around a point, fraction of the image short side
POINT_DISK = 0.03  # sure-object disk radius around a point, fraction of the image short side
BORDER = 0.02  # default box when no seed is given: the image minus this border


class GrabCutSegmenter(Segmenter):
    """Box- or point-seeded GrabCut (stand-in for SAM)."""

    backend = "grabcut"

    def __init__(self, iterations: int = ITERATIONS, max_side: int = MAX_SIDE) -> None:
        self.iterations = iterations
        self.max_side = max_side

    def segment_batch(
        self,
        images: list[Image],
        boxes: list[Box | None],
        points: list[tuple[float, float] | None],
    ) -> list[Mask]:
        if not len(images) == len(boxes) == len(points):
            raise ValueError("images, boxes and points must have the same length")
        return [
            self._segment(as_rgb(image), box, point)
            for image, box, point in zip(images, boxes, points, strict=True)
        ]

    def _segment(
        self, image: np.ndarray, box: Box | None, point: tuple[float, float] | None
    ) -> Mask:
        height, width = image.shape[:2]
        if box is None and point is None:
            bx, by = BORDER * width, BORDER * height
            box = Box(x0=bx, y0=by, x1=width - bx, y1=height - by)
        if box is not None:
            return self._from_box(image, box, point)
        assert point is not None
        return self._from_point(image, point)

    def _from_box(self, image: np.ndarray, box: Box, point: tuple[float, float] | None) -> Mask:
        height, width = image.shape[:2]
        x0, y0, x1, y1 = int_box(box, width, height)
        mx, my = int((x1 - x0) * CONTEXT) + 2, int((y1 - y0) * CONTEXT) + 2
        cx0, cy0 = max(0, x0 - mx), max(0, y0 - my)
        cx1, cy1 = min(width, x1 + mx), min(height, y1 + my)
        context = image[cy0:cy1, cx0:cx1]
        scale = min(1.0, self.max_side / max(context.shape[:2]))
        small = _resize(context, scale)
        sh, sw = small.shape[:2]
        rect_x0 = int(np.floor((x0 - cx0) * scale))
        rect_y0 = int(np.floor((y0 - cy0) * scale))
        rect_x1 = min(sw, int(np.ceil((x1 - cx0) * scale)))
        rect_y1 = min(sh, int(np.ceil((y1 - cy0) * scale)))
        seed = np.full((sh, sw), cv2.GC_BGD, dtype=np.uint8)
        seed[rect_y0:rect_y1, rect_x0:rect_x1] = cv2.GC_PR_FGD
        small_point = None
        if point is not None:
            small_point = ((point[0] - cx0) * scale, (point[1] - cy0) * scale)
            radius = max(2, int(POINT_DISK * min(sh, sw)))
            cv2.circle(seed, (int(small_point[0]), int(small_point[1])), radius, cv2.GC_FGD, -1)
            seed[:rect_y0, :] = cv2.GC_BGD
            seed[rect_y1:, :] = cv2.GC_BGD
            seed[:, :rect_x0] = cv2.GC_BGD
            seed[:, rect_x1:] = cv2.GC_BGD
        if not _has_background(seed):  # the box is the whole image: its rim is the background
            rim = max(1, int(BORDER * min(sh, sw)))
            seed[:rim, :] = seed[-rim:, :] = cv2.GC_BGD
            seed[:, :rim] = seed[:, -rim:] = cv2.GC_BGD
        if rect_x1 - rect_x0 < 4 or rect_y1 - rect_y0 < 4:
            small_mask = None  # too small to cut: ellipse fallback
        else:
            small_mask = self._grabcut(small, seed)
            small_mask[seed == cv2.GC_BGD] = False  # never outside the box
        region = (cx0, cy0, cx1, cy1)
        return self._finish(image, small_mask, region, small_point, box, clip=box)

    def _from_point(self, image: np.ndarray, point: tuple[float, float]) -> Mask:
        height, width = image.shape[:2]
        px = float(np.clip(point[0], 0, width - 1))
        py = float(np.clip(point[1], 0, height - 1))
        scale = min(1.0, self.max_side / max(height, width))
        small = _resize(image, scale)
        sh, sw = small.shape[:2]
        spx, spy = px * scale, py * scale
        seed = np.full((sh, sw), cv2.GC_PR_BGD, dtype=np.uint8)
        half = max(4, int(POINT_WINDOW * min(sh, sw)))
        wy0, wy1 = max(0, int(spy) - half), min(sh, int(spy) + half)
        wx0, wx1 = max(0, int(spx) - half), min(sw, int(spx) + half)
        seed[wy0:wy1, wx0:wx1] = cv2.GC_PR_FGD
        cv2.circle(seed, (int(spx), int(spy)), max(2, int(POINT_DISK * min(sh, sw))), 1, -1)
        small_mask = self._grabcut(small, seed)
        window = Box(x0=wx0 / scale, y0=wy0 / scale, x1=wx1 / scale, y1=wy1 / scale)
        return self._finish(image, small_mask, (0, 0, width, height), (spx, spy), window, None)

    def _grabcut(self, small: np.ndarray, seed: np.ndarray) -> np.ndarray:
        mask = seed.copy()
        background = np.zeros((1, 65), np.float64)
        foreground = np.zeros((1, 65), np.float64)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        cv2.grabCut(bgr, mask, None, background, foreground, self.iterations, cv2.GC_INIT_WITH_MASK)
        return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)

    def _finish(
        self,
        image: np.ndarray,
        small_mask: np.ndarray | None,
        region: tuple[int, int, int, int],
        small_point: tuple[float, float] | None,
        fallback: Box,
        clip: Box | None,
    ) -> Mask:
        """Clean the small mask, scale it back into ``region`` of the image, clip to ``clip``."""
        height, width = image.shape[:2]
        meta: dict[str, object] = {"method": "grabcut", "iterations": self.iterations}
        if small_mask is not None:
            small_mask = _clean(small_mask, small_point)
        if small_mask is None or not small_mask.any():
            pixels = _ellipse(height, width, fallback)
            return Mask(pixels=pixels, score=0.0, meta={**meta, "fallback": "ellipse"})
        cx0, cy0, cx1, cy1 = region
        full = np.zeros((height, width), dtype=bool)
        upscaled = cv2.resize(
            small_mask.astype(np.uint8), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_NEAREST
        )
        full[cy0:cy1, cx0:cx1] = upscaled > 0
        if clip is not None:
            x0, y0, x1, y1 = int_box(clip, width, height)
            inside = np.zeros_like(full)
            inside[y0:y1, x0:x1] = True
            full &= inside
        return Mask(pixels=full, score=1.0, meta=meta)

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="OpenCV GrabCut (no learned weights)",
            weights=None,
            device="cpu",
            stand_in=True,
            note=(
                "stand-in for SAM: colour-model graph cut seeded by a box or a point; good on "
                "objects that differ in colour from their surroundings, poor on camouflage"
            ),
        )


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return np.ascontiguousarray(image)
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def _has_background(seed: np.ndarray) -> bool:
    return bool((seed == cv2.GC_BGD).sum() >= 16 or (seed == cv2.GC_PR_BGD).sum() >= 16)


def _clean(mask: np.ndarray, point: tuple[float, float] | None) -> np.ndarray:
    """Keep the component under ``point`` (else the largest one) and fill its holes."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if count <= 1:
        return np.zeros_like(mask)
    keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    if point is not None:
        px = int(np.clip(point[0], 0, mask.shape[1] - 1))
        py = int(np.clip(point[1], 0, mask.shape[0] - 1))
        if labels[py, px] > 0:
            keep = int(labels[py, px])
    component = (labels == keep).astype(np.uint8)
    # Fill holes: background pixels not connected to the border become object.
    padded = np.pad(component, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return (component > 0) | holes


def _ellipse(height: int, width: int, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = int_box(box, width, height)
    pixels = np.zeros((height, width), dtype=np.uint8)
    centre = ((x0 + x1) // 2, (y0 + y1) // 2)
    axes = (max(1, (x1 - x0) // 2), max(1, (y1 - y0) // 2))
    cv2.ellipse(pixels, centre, axes, 0, 0, 360, 1, -1)
    return pixels > 0
