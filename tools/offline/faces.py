"""Face detector of the offline pack: OpenCV Haar cascades from ``cv2.data`` (OpenCV 4.x wheels).

Haar cascades fire on wheels, boat hulls and sand. Two checks keep precision up on the dev
photos: each face from the ``alt2`` cascade must be confirmed by the ``default`` cascade run on a
crop around it, and (for colour images) a fair share of its central pixels must fall in a broad
YCrCb skin range. Frontal faces only: a face turned to the side (zidane.jpg's Zidane) is missed.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline._image import as_rgb, box_iou
from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.roles import FaceDetector, Image
from vpagent.tools.types import Box, Detection, ToolInfo

MAX_SIDE = 960  # images are downscaled to this long side before the cascade runs
# Pyramid step. On the dev photos 1.1 / 1.15 / 1.2 find the same faces in about 780 / 360 /
# 160 ms per photo (loaded 2-core machine); 1.15 keeps finer steps for recall elsewhere.
SCALE_FACTOR = 1.15
MIN_NEIGHBORS = 4
MIN_FACE_FRACTION = 0.02  # smallest face side as a fraction of the image's short side
CONFIRM_IOU = 0.4  # the confirming cascade's box must overlap this much
SKIN_MIN = 0.25  # share of skin-coloured pixels in the face centre (colour images)
SKIN_CR = (133, 173)
SKIN_CB = (77, 127)


class HaarFaceDetector(FaceDetector):
    """Frontal faces: Haar alt2 cascade, confirmed by the default cascade and a skin check."""

    backend = "haar"

    def __init__(
        self,
        scale_factor: float = SCALE_FACTOR,
        min_neighbors: int = MIN_NEIGHBORS,
        skin_check: bool = True,
        confirm: bool = True,
    ) -> None:
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.skin_check = skin_check
        self.confirm = confirm
        self._cascades: Lazy[tuple[Any, Any]] = Lazy(self._load)
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, Any]:
        primary = cv2.CascadeClassifier(str(weights.packaged_file("haar.frontalface_alt2")))
        second = cv2.CascadeClassifier(str(weights.packaged_file("haar.frontalface")))
        if primary.empty() or second.empty():
            raise ModelUnavailable(
                "OpenCV could not load its Haar cascades; install an OpenCV 4.x wheel "
                "(pip install 'opencv-python>=4.10,<5'; OpenCV 5 ships no cascades)."
            )
        return primary, second

    def detect_faces(self, image: Image) -> list[Detection]:
        rgb = as_rgb(image)
        primary, second = self._cascades.get()
        height, width = rgb.shape[:2]
        scale = min(1.0, MAX_SIDE / max(height, width))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        gray = cv2.equalizeHist(gray)
        min_side = max(20, int(MIN_FACE_FRACTION * min(gray.shape)))
        with self._lock:
            boxes, _, _ = primary.detectMultiScale3(
                gray,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_side, min_side),
                outputRejectLevels=True,
            )
        colourful = self.skin_check and not _is_grayscale(rgb)
        ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb) if colourful else None
        faces = []
        for x, y, w, h in np.asarray(boxes).reshape(-1, 4):
            weight = self._confirm(second, gray, (x, y, w, h)) if self.confirm else 3.0
            if weight is None:
                continue
            box = np.array([x, y, x + w, y + h], dtype=np.float64) / scale
            if ycrcb is not None and _skin_share(ycrcb, box) < SKIN_MIN:
                continue
            score = float(1.0 / (1.0 + np.exp(-(weight - 1.0) / 1.5)))
            faces.append(
                Detection(
                    box=Box.of([round(float(v), 1) for v in box]),
                    score=min(max(score, 0.0), 1.0),
                    label="face",
                )
            )
        faces.sort(key=lambda d: -d.score)
        return faces

    def _confirm(self, cascade: Any, gray: np.ndarray, face: tuple[int, ...]) -> float | None:
        """The default cascade's level weight for a face near ``face``, or None if it finds none."""
        x, y, w, h = (int(v) for v in face)
        pad = w // 2
        x0, y0 = max(0, x - pad), max(0, y - pad)
        x1, y1 = min(gray.shape[1], x + w + pad), min(gray.shape[0], y + h + pad)
        window = gray[y0:y1, x0:x1]
        side = max(20, int(0.6 * w))
        with self._lock:
            boxes, _, levels = cascade.detectMultiScale3(
                window,
                scaleFactor=1.05,
                minNeighbors=3,
                minSize=(side, side),
                maxSize=(int(1.6 * w), int(1.6 * h)),
                outputRejectLevels=True,
            )
        target = np.array([x - x0, y - y0, x - x0 + w, y - y0 + h], dtype=np.float64)
        best = None
        for (bx, by, bw, bh), level in zip(
            np.asarray(boxes).reshape(-1, 4), np.asarray(levels).reshape(-1), strict=False
        ):
            if box_iou(target, np.array([bx, by, bx + bw, by + bh], dtype=np.float64)) >= (
                CONFIRM_IOU
            ):
                best = max(best or float("-inf"), float(level))
        return best

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="OpenCV Haar cascades frontalface_alt2 + frontalface_default",
            weights=weights.location_or_none("haar.frontalface_alt2"),
            device="cpu",
            stand_in=False,
            note="frontal faces only; confirmed by a second cascade and a skin-colour check",
        )


def _is_grayscale(rgb: np.ndarray) -> bool:
    sample = rgb[:: max(1, rgb.shape[0] // 64), :: max(1, rgb.shape[1] // 64)].astype(np.int16)
    return bool(np.abs(sample[..., 0] - sample[..., 1]).max() < 8)


def _skin_share(ycrcb: np.ndarray, box: np.ndarray) -> float:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx0, cy0 = int(max(0, x0 + w / 4)), int(max(0, y0 + h / 4))
    cx1, cy1 = int(min(ycrcb.shape[1], x1 - w / 4)), int(min(ycrcb.shape[0], y1 - h / 4))
    centre = ycrcb[cy0:cy1, cx0:cx1].reshape(-1, 3)
    if len(centre) == 0:
        return 0.0
    cr, cb = centre[:, 1], centre[:, 2]
    skin = (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])
    return float(skin.mean())
