"""Region tokens for the embedded student: the offline detector's boxes, as in bottom-up attention.

With ``eyes = "grid+regions"`` the student also reads ``num_regions`` region tokens (Anderson et
al. 2018; LXMERT). They come from the offline pack's SSD-MobileNet COCO detector: one 300x300
pass with the detector's own NMS and cross-class suppression, score >= the threshold, best
first. Each region has an RoI feature (the mean of the 9x9 grid cells the box overlaps, weighted
by the overlap area), a COCO class id and its geometry (x0, y0, x1, y1, w, h, area in [0, 1],
then the score). Slots without a box have label -1: the model gives them its "no region"
embedding, so every image has the same number of tokens. The detector is frozen, so detections
are computed once per image and cached by content hash like the grid features (in memory and,
optionally, as ``.json`` on disk).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.images import load_image
from vpagent.student.encoder import image_digest
from vpagent.student.feature_maps import GRID
from vpagent.tools.offline.coco_names import COCO_CLASSES

NUM_REGIONS = 10
SCORE_THRESHOLD = 0.3
NUM_REGION_CLASSES = len(COCO_CLASSES)
GEOMETRY_DIM = 8  # x0, y0, x1, y1, w, h, area, score
NO_REGION = -1
REGION_INPUTS = ("region_features", "region_labels", "region_geometry")
_CLASS_IDS = {name: index for index, name in enumerate(COCO_CLASSES)}


@dataclass(frozen=True)
class Regions:
    """An image's detections, best first: boxes xyxy in [0, 1], COCO class ids, scores."""

    boxes: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N,) float32

    def to_json(self) -> str:
        fields = {"boxes": self.boxes, "labels": self.labels, "scores": self.scores}
        return json.dumps({name: value.tolist() for name, value in fields.items()})

    @classmethod
    def from_json(cls, text: str) -> Regions:
        data = json.loads(text)
        return cls(
            boxes=np.asarray(data["boxes"], dtype=np.float32).reshape(-1, 4),
            labels=np.asarray(data["labels"], dtype=np.int64),
            scores=np.asarray(data["scores"], dtype=np.float32),
        )


class RegionDetector:
    """Image -> its best ``num_regions`` COCO detections, cached by the image's content hash."""

    def __init__(
        self,
        num_regions: int = NUM_REGIONS,
        score_threshold: float = SCORE_THRESHOLD,
        cache_dir: Path | None = None,
        *,
        memory_items: int = 512,
    ) -> None:
        self.num_regions = num_regions
        self.score_threshold = score_threshold
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory_items = memory_items
        self._memory: OrderedDict[str, Regions] = OrderedDict()
        self._detector: Any = None
        self._lock = threading.Lock()

    def _compute(self, pixels: np.ndarray) -> Regions:
        with self._lock:
            if self._detector is None:
                from vpagent.tools.offline.detector import SSDCocoDetector

                self._detector = SSDCocoDetector(
                    score_threshold=self.score_threshold, zoom=False, check_animals=False, tiles=0
                )
            found = self._detector.detect_all(pixels)
        found = sorted(found, key=lambda d: -d.score)[: self.num_regions]
        height, width = pixels.shape[:2]
        scale = np.array([width, height, width, height], dtype=np.float32)
        boxes = np.array([d.box.as_list() for d in found], dtype=np.float32).reshape(-1, 4)
        return Regions(
            boxes=np.clip(boxes / scale, 0.0, 1.0),
            labels=np.array([_CLASS_IDS[d.label] for d in found], dtype=np.int64),
            scores=np.array([d.score for d in found], dtype=np.float32),
        )

    def _disk_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.json" if self.cache_dir is not None else None

    def detect(self, image: np.ndarray | Path) -> Regions:
        """Detections of an RGB uint8 image or an image file, from the cache when it has them."""
        key = f"{image_digest(image)}-ssd-{self.num_regions}-{self.score_threshold:g}"
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._disk_path(key)
        if path is not None and path.is_file():
            regions = Regions.from_json(path.read_text(encoding="utf-8"))
        else:
            regions = self._compute(image if isinstance(image, np.ndarray) else load_image(image))
            if path is not None:
                _write_atomically(path, regions.to_json())
        self._memory[key] = regions
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return regions


def pool(grid: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, D) RoI features: each box's mean of the (GRID*GRID, D) cells, weighted by overlap."""
    edges = np.arange(GRID + 1, dtype=np.float32) / GRID
    low, high = edges[:-1], edges[1:]
    across = np.clip(np.minimum(boxes[:, 2:3], high) - np.maximum(boxes[:, 0:1], low), 0, None)
    down = np.clip(np.minimum(boxes[:, 3:4], high) - np.maximum(boxes[:, 1:2], low), 0, None)
    overlap = (down[:, :, None] * across[:, None, :]).reshape(len(boxes), GRID * GRID)
    overlap /= np.maximum(overlap.sum(axis=1, keepdims=True), 1e-12)
    return (overlap @ grid).astype(np.float32)


def geometry(regions: Regions) -> np.ndarray:
    """(N, 8): x0, y0, x1, y1, width, height, area (all in [0, 1]) and the score."""
    x0, y0, x1, y1 = regions.boxes.T
    width, height = x1 - x0, y1 - y0
    columns = [x0, y0, x1, y1, width, height, width * height, regions.scores]
    return np.stack(columns, axis=1).astype(np.float32).reshape(-1, GEOMETRY_DIM)


def region_inputs(grid: np.ndarray, regions: Regions, num_regions: int) -> dict[str, np.ndarray]:
    """Fixed-size model inputs: ``num_regions`` slots, unused ones labelled NO_REGION."""
    count = min(len(regions.labels), num_regions)
    features = np.zeros((num_regions, grid.shape[1]), dtype=np.float32)
    labels = np.full(num_regions, NO_REGION, dtype=np.int64)
    shape = np.zeros((num_regions, GEOMETRY_DIM), dtype=np.float32)
    features[:count] = pool(grid, regions.boxes[:count])
    labels[:count] = regions.labels[:count]
    shape[:count] = geometry(regions)[:count]
    return dict(zip(REGION_INPUTS, (features, labels, shape), strict=True))


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".json.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
