"""COCO detector of the offline pack: SSD-MobileNet-v2 (TF frozen graph) through ``cv2.dnn``.

Closed vocabulary: query names are mapped to the 80 COCO classes by
:mod:`vpagent.tools.offline.coco_names` and anything that does not map is refused with
CannotAnswer. The network sees 300x300 pixels, so on top of one plain forward pass per image
the detector does a few cheap things (batched):

- zoom pass: when the query's candidates sit in a region at most half the image, that region
  (padded) goes through the network again at full 300x300 resolution; small or touching objects
  that the first pass merged into one box come apart (two dogs side by side, people in a crowd);
- tiled pass (``tiles``, 2x2 by default): overlapping tiles of images with a short side of at
  least TILE_MIN_SIDE go through the network too, for objects too small at 300x300; a tile
  keeps only boxes that are small in it, not cut by its inner edges, and not a piece of a box
  the whole-image pass found. ``flip`` adds a mirrored pass (test-time augmentation);
- animal check: SSD at 300x300 confuses animals (a bulldog as a cat, a black labrador as a
  cow); each animal box is cropped and classified by the ImageNet classifier, whose fine-grained
  labels (118 dog breeds, 5 house cats, ...) relabel the box when they clearly disagree.

Then per-class NMS (which also merges the duplicates the zoom and tile passes find again),
removal of "group" boxes covered by two or more boxes of the same class, cross-class suppression
of near-identical boxes, and the score thresholds. The tile grid, the mirrored pass, the NMS
overlap, one score threshold and per-class thresholds come from :data:`CALIBRATION_FILE`, chosen
by exact count accuracy on the coco128 training photos (`vpagent distill calibrate-counts`,
never the validation photos); an explicit ``score_threshold`` applies to every class instead.
``search`` looks harder for an object a question presupposes
(tiles, flip, SEARCH_THRESHOLD) and says so through its low scores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vpagent.tools import weights
from vpagent.tools.cache import pixels_key
from vpagent.tools.offline._image import as_rgb, box_iou
from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.offline.classifier import COCO_ANIMALS, EfficientNetClassifier, shared_classifier
from vpagent.tools.offline.coco_names import (
    COCO_CLASSES,
    COCO_TF_IDS,
    CocoNameMapper,
    shared_mapper,
)
from vpagent.tools.roles import Detector, Image
from vpagent.tools.types import Box, Detection, ToolInfo

INPUT_SIDE = 300
MODEL_NAME = "SSD-MobileNet-v2 COCO 2018-03-29 (TensorFlow frozen graph, 80 classes)"

CALIBRATION_FILE = Path(__file__).with_name("count_calibration.json")
CANDIDATE_THRESHOLD = 0.3  # boxes kept from the network for the zoom region and merging
CROSS_CLASS_IOU = 0.7  # near-identical boxes of two classes: keep the higher score
ZOOM_MAX_AREA = 0.5  # zoom only when the region is at most this fraction of the image
ZOOM_PAD = 0.15  # padding around the zoom region, as a fraction of its size
ZOOM_EDGE_PX = 2.0  # zoom-pass boxes touching a cut edge of the crop are partial: dropped
GROUP_PART_INSIDE = 0.7  # a "part" box lies at least this much inside the group box
GROUP_COVERAGE = 0.7  # the parts together cover at least this much of the group box
ANIMAL_AGREEMENT = 0.5  # classifier mass a different animal needs to relabel a box
ANIMAL_KEEP = 0.2  # ... while the detector's own class gets less than this
ANIMAL_CHECK_MIN = 0.4  # animal boxes above this score are checked by the classifier
ANIMAL_CHECK_MAX = 8  # ... at most this many per pass (best scores first), 40-100 ms each
ANIMAL_CHECK_SIDE = 24  # ... and only boxes at least this many pixels on each side
TILE_OVERLAP = 0.2  # tiled pass: neighbouring tiles share this fraction of a tile
TILE_MIN_SIDE = 400  # ... and only images whose short side is at least this many pixels
TILE_MAX_AREA = 0.25  # ... keeping boxes under this fraction of the tile: tiles are for small
# objects; a big object is cut by tile edges, and its pieces would out-vote the whole-image box
PIECE_AREA = 0.2  # a tile box inside a whole-image box is a piece of it from this share on
SEARCH_THRESHOLD = 0.15  # search(): the presupposed object's best box may score this low
PASSES_REMEMBERED = 64  # network passes kept by input pixels: a photo's whole-image pass and
# tiles are the same for every query, so a second find (or the scene description) reuses them


class Calibration(BaseModel):
    """The detector's counting settings (see :data:`CALIBRATION_FILE`)."""

    model_config = ConfigDict(extra="ignore")

    score_threshold: float = Field(gt=0, lt=1)
    nms_iou: float = Field(gt=0, le=1)
    tiles: int = Field(ge=0)
    flip: bool
    class_thresholds: dict[str, float] = Field(default_factory=dict)


def load_calibration(path: Path = CALIBRATION_FILE) -> Calibration:
    """The committed calibration (`vpagent distill calibrate-counts` writes it)."""
    return Calibration.model_validate_json(path.read_text(encoding="utf-8"))


CALIBRATION = load_calibration()
SCORE_THRESHOLD = CALIBRATION.score_threshold
NMS_IOU = CALIBRATION.nms_iou
TILES = CALIBRATION.tiles


@dataclass
class Candidate:
    box: np.ndarray  # xyxy pixels, float
    score: float
    cls: str

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0) * max(self.box[3] - self.box[1], 0))


def load_network() -> Any:
    """The packaged SSD-MobileNet-v2 graph as an OpenCV DNN network on the CPU."""
    graph = weights.packaged_file("ssd.graph")
    config = weights.packaged_file("ssd.config")
    net = cv2.dnn.readNetFromTensorflow(str(graph), str(config))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def network_input(images: list[np.ndarray]) -> np.ndarray:
    """RGB uint8 images as the graph's input blob: squashed to 300x300, its own scaling."""
    return cv2.dnn.blobFromImages(
        [np.ascontiguousarray(image) for image in images],
        scalefactor=1.0,
        size=(INPUT_SIDE, INPUT_SIDE),
        mean=(0, 0, 0),
        swapRB=False,  # images are RGB already, as the TF graph expects
        crop=False,
    )


class SSDCocoDetector(Detector):
    """80-class COCO detector with name mapping, a zoom pass and an ImageNet animal check."""

    backend = "ssd-coco"
    reads_attributes = False

    def __init__(
        self,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        zoom: bool = True,
        check_animals: bool = True,
        classifier: EfficientNetClassifier | None = None,
        name_mapper: CocoNameMapper | None = None,
        tiles: int | None = None,
        flip: bool | None = None,
        calibration: Calibration = CALIBRATION,
        passes_remembered: int = PASSES_REMEMBERED,
    ) -> None:
        given = {
            "score_threshold": score_threshold,
            "nms_iou": nms_iou,
            "tiles": tiles,
            "flip": flip,
        }
        update: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
        if score_threshold is not None:  # one threshold for every class: the calibrated go
            update["class_thresholds"] = {}
        self.calibration = calibration.model_copy(update=update)
        if self.tiles < 0 or self.tiles == 1:
            raise ValueError(f"tiles must be 0 (off) or a grid size >= 2, not {self.tiles}")
        self.zoom = zoom
        self.check_animals = check_animals
        self._classifier = classifier
        self._names = name_mapper
        self._net: Lazy[Any] = Lazy(self._load)
        self._lock = threading.Lock()  # the network
        self._passes: OrderedDict[str, list[Candidate]] = OrderedDict()
        self._passes_lock = threading.Lock()
        self.passes_remembered = passes_remembered  # 0: every pass runs (benchmarks)

    @property
    def score_threshold(self) -> float:
        return self.calibration.score_threshold

    @property
    def nms_iou(self) -> float:
        return self.calibration.nms_iou

    @property
    def tiles(self) -> int:
        return self.calibration.tiles

    @property
    def flip(self) -> bool:
        return self.calibration.flip

    # Loading.

    def _load(self) -> Any:
        return load_network()

    @property
    def classifier(self) -> EfficientNetClassifier:
        if self._classifier is None:
            self._classifier = shared_classifier()
        return self._classifier

    @property
    def names(self) -> CocoNameMapper:
        return self._names if self._names is not None else shared_mapper()

    # Public API.

    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        if len(images) != len(names):
            raise ValueError(f"{len(images)} images but {len(names)} name lists")
        resolved = [{name: self.names.resolve(name) for name in query} for query in names]
        wanted = [{cls for classes in r.values() for cls in classes} for r in resolved]
        found = self._detect(images, wanted)
        results: list[list[Detection]] = []
        for mapping, candidates in zip(resolved, found, strict=True):
            detections = [
                Detection(box=_to_box(c.box), score=_unit(c.score), label=name)
                for name, classes in mapping.items()
                for c in candidates
                if c.cls in classes
            ]
            detections.sort(key=lambda d: -d.score)
            results.append(detections)
        return results

    def detect_all_batch(self, images: list[Image]) -> list[list[Detection]]:
        """Every COCO object in each image, labelled with its COCO class name."""
        everything = set(COCO_CLASSES)
        found = self._detect(images, [everything] * len(images))
        return [
            [Detection(box=_to_box(c.box), score=_unit(c.score), label=c.cls) for c in candidates]
            for candidates in found
        ]

    def detect_all(self, image: Image) -> list[Detection]:
        return self.detect_all_batch([image])[0]

    def search(self, image: Image, name: str) -> list[Detection]:
        """A harder search for an object the question presupposes: tiles, flip and a low
        threshold (SEARCH_THRESHOLD). Best first; the caller says the scores are low."""
        classes = set(self.names.resolve(name))
        found = self._detect(
            [image], [classes], threshold=SEARCH_THRESHOLD, tiles=max(self.tiles, 2), flip=True
        )[0]
        hits = [
            Detection(box=_to_box(c.box), score=_unit(c.score), label=name)
            for c in found
            if c.cls in classes
        ]
        return sorted(hits, key=lambda d: -d.score)

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model=MODEL_NAME,
            weights=weights.location_or_none("ssd.graph"),
            device="cpu",
            stand_in=False,
            note=(
                "closed vocabulary: 80 COCO classes; other names are mapped by synonyms and "
                "MiniLM similarity or refused (CannotAnswer); zoom pass "
                f"{'on' if self.zoom else 'off'}, ImageNet animal check "
                f"{'on' if self.check_animals else 'off'}, tiles {self.tiles or 'off'}, flip "
                f"{'on' if self.flip else 'off'}, score >= {self.score_threshold}"
                + "".join(
                    f", {name} >= {value}"
                    for name, value in sorted(self.calibration.class_thresholds.items())
                )
            ),
        )

    # Pipeline.

    def _detect(
        self,
        images: list[Image],
        wanted: list[set[str]],
        threshold: float | None = None,
        tiles: int | None = None,
        flip: bool | None = None,
    ) -> list[list[Candidate]]:
        if not images:
            return []
        tiles = self.tiles if tiles is None else tiles
        lowest = min([self.score_threshold, *self.calibration.class_thresholds.values()])
        floor = min(CANDIDATE_THRESHOLD, lowest if threshold is None else threshold)
        rgbs = [as_rgb(image) for image in images]
        first = self.forward(rgbs, floor)
        if self.flip if flip is None else flip:
            mirrored = self.forward([np.ascontiguousarray(rgb[:, ::-1]) for rgb in rgbs], floor)
            first = [
                self._nms([*cands, *(_unflip(c, rgb.shape[1]) for c in extra)])
                for rgb, cands, extra in zip(rgbs, first, mirrored, strict=True)
            ]
        first = [
            self._check_animals(rgb, cands, want)
            for rgb, cands, want in zip(rgbs, first, wanted, strict=True)
        ]
        zoom_jobs: list[tuple[int, tuple[int, int, int, int]]] = []
        if self.zoom:
            for index, (rgb, cands, want) in enumerate(zip(rgbs, first, wanted, strict=True)):
                region = zoom_region(cands, want, rgb.shape[1], rgb.shape[0])
                if region is not None:
                    zoom_jobs.append((index, region))
        merged = [list(cands) for cands in first]
        zoom_count = len(zoom_jobs)
        if tiles >= 2:
            tile_jobs = [
                (index, region)
                for index, rgb in enumerate(rgbs)
                for region in tile_regions(rgb.shape[1], rgb.shape[0], tiles)
            ]
            zoom_jobs.extend(tile_jobs)
        if zoom_jobs:
            crops = [rgbs[i][y0:y1, x0:x1] for i, (x0, y0, x1, y1) in zoom_jobs]
            zoomed = self.forward(crops, floor)
            for job, ((index, region), cands) in enumerate(zip(zoom_jobs, zoomed, strict=True)):
                rgb = rgbs[index]
                if job >= zoom_count:  # a tile
                    tile_area = (region[2] - region[0]) * (region[3] - region[1])
                    cands = [c for c in cands if c.area < TILE_MAX_AREA * tile_area]
                kept = _from_crop(cands, region, rgb.shape[1], rgb.shape[0])
                if job >= zoom_count:
                    kept = [c for c in kept if not _piece_of(c, first[index])]
                merged[index].extend(self._check_animals(rgb, kept, wanted[index]))
        return [
            [c for c in self._suppress(cands) if c.score >= self._bar(c.cls, threshold)]
            for cands in merged
        ]

    def _bar(self, cls: str, threshold: float | None) -> float:
        return self.threshold_of(cls) if threshold is None else threshold

    def threshold_of(self, cls: str) -> float:
        """The score a box of COCO class ``cls`` needs to be reported."""
        return self.calibration.class_thresholds.get(cls, self.score_threshold)

    def forward(
        self, images: list[np.ndarray], min_score: float = CANDIDATE_THRESHOLD
    ) -> list[list[Candidate]]:
        """One batched network pass: candidates (score >= ``min_score``) per image. Passes
        over pixels seen before (the last ``passes_remembered``) are not run again."""
        keys = [pixels_key(image) for image in images]
        with self._passes_lock:
            remembered = {key: self._passes[key] for key in keys if key in self._passes}
            for key in remembered:
                self._passes.move_to_end(key)
        unseen = {
            key: image for key, image in zip(keys, images, strict=True) if key not in remembered
        }
        if unseen:
            ran = dict(zip(unseen, self._run_network(list(unseen.values())), strict=True))
            with self._passes_lock:
                self._passes.update(ran)
                while len(self._passes) > self.passes_remembered:
                    self._passes.popitem(last=False)
            remembered.update(ran)
        return [[c for c in remembered[key] if c.score >= min_score] for key in keys]

    def _run_network(self, images: list[np.ndarray]) -> list[list[Candidate]]:
        """Every candidate the network reports for each image (its own floor, no other)."""
        net = self._net.get()
        blob = network_input(images)
        with self._lock:
            net.setInput(blob)
            output = net.forward()
        rows = output.reshape(-1, 7)
        results: list[list[Candidate]] = [[] for _ in images]
        for row in rows:
            index, class_id, score = int(row[0]), int(row[1]), float(row[2])
            cls = COCO_TF_IDS.get(class_id)
            if cls is None or not 0 <= index < len(images):
                continue
            height, width = images[index].shape[:2]
            box = np.clip(row[3:7], 0.0, 1.0) * np.array([width, height, width, height])
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            results[index].append(Candidate(box.astype(np.float64), score, cls))
        return results

    def _check_animals(
        self, image: np.ndarray, candidates: list[Candidate], wanted: set[str]
    ) -> list[Candidate]:
        """Relabel animal boxes whose crop the ImageNet classifier puts in another animal class."""
        if not self.check_animals or not wanted.intersection(COCO_ANIMALS):
            return candidates
        eligible = sorted(
            (
                c
                for c in candidates
                if c.cls in COCO_ANIMALS
                and c.score >= ANIMAL_CHECK_MIN
                and min(c.box[2] - c.box[0], c.box[3] - c.box[1]) >= ANIMAL_CHECK_SIDE
            ),
            key=lambda c: -c.score,
        )[:ANIMAL_CHECK_MAX]
        to_check = {id(c) for c in eligible}
        checked = []
        for cand in candidates:
            if id(cand) in to_check:
                x0, y0, x1, y1 = (round(v) for v in cand.box)
                patch = image[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
                mass = self.classifier.category_mass(self.classifier.probabilities(patch))
                animals = {k: v for k, v in mass.items() if k in COCO_ANIMALS}
                best = max(animals, key=animals.__getitem__)
                if (
                    best != cand.cls
                    and animals[best] >= ANIMAL_AGREEMENT
                    and animals.get(cand.cls, 0.0) < ANIMAL_KEEP
                ):
                    cand = Candidate(cand.box, cand.score, best)
            checked.append(cand)
        return checked

    def _nms(self, candidates: list[Candidate]) -> list[Candidate]:
        """Class-aware NMS: a box is dropped only by a better box of its own class."""
        kept: list[Candidate] = []
        for cand in sorted(candidates, key=lambda c: -c.score):
            if all(k.cls != cand.cls or box_iou(k.box, cand.box) < self.nms_iou for k in kept):
                kept.append(cand)
        return kept

    def _suppress(self, candidates: list[Candidate]) -> list[Candidate]:
        kept = self._nms(candidates)
        confident = [c for c in kept if c.score >= self.threshold_of(c.cls)]
        kept = [c for c in kept if not _is_group_box(c, confident)]
        final: list[Candidate] = []
        for cand in kept:  # cross-class: one object, two labels
            if all(box_iou(k.box, cand.box) < CROSS_CLASS_IOU for k in final):
                final.append(cand)
        return final


def zoom_region(
    candidates: list[Candidate], wanted: set[str], width: int, height: int
) -> tuple[int, int, int, int] | None:
    """The padded union of the wanted candidates, if it is small enough to be worth a pass."""
    relevant = [c.box for c in candidates if c.cls in wanted]
    if not relevant:
        return None
    boxes = np.array(relevant)
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = boxes[:, 2].max(), boxes[:, 3].max()
    pad_x, pad_y = (x1 - x0) * ZOOM_PAD, (y1 - y0) * ZOOM_PAD
    x0, x1 = max(0, int(x0 - pad_x)), min(width, int(np.ceil(x1 + pad_x)))
    y0, y1 = max(0, int(y0 - pad_y)), min(height, int(np.ceil(y1 + pad_y)))
    if (x1 - x0) * (y1 - y0) > ZOOM_MAX_AREA * width * height or x1 - x0 < 8 or y1 - y0 < 8:
        return None
    return x0, y0, x1, y1


def tile_regions(width: int, height: int, grid: int) -> list[tuple[int, int, int, int]]:
    """A ``grid`` x ``grid`` cover of the image by overlapping tiles (none for small images)."""
    if min(width, height) < TILE_MIN_SIDE:
        return []
    span = grid - (grid - 1) * TILE_OVERLAP  # tiles per side, counting overlaps once
    tile_w, tile_h = width / span, height / span
    regions = []
    for row in range(grid):
        for col in range(grid):
            x0 = col * tile_w * (1 - TILE_OVERLAP)
            y0 = row * tile_h * (1 - TILE_OVERLAP)
            regions.append(
                (int(x0), int(y0), min(width, int(x0 + tile_w)), min(height, int(y0 + tile_h)))
            )
    return regions


def _piece_of(cand: Candidate, whole: list[Candidate]) -> bool:
    """True if a tile's box is a piece of an object the whole-image pass found: mostly inside
    a box of its class, at least PIECE_AREA of its size, and scored lower (a dog's head seen
    alone in a tile). A smaller object inside another's box (a child before an adult) stays."""
    for other in whole:
        if (
            other.cls != cand.cls
            or cand.area < PIECE_AREA * other.area
            or cand.score >= other.score
        ):
            continue
        ix = max(0.0, min(cand.box[2], other.box[2]) - max(cand.box[0], other.box[0]))
        iy = max(0.0, min(cand.box[3], other.box[3]) - max(cand.box[1], other.box[1]))
        if ix * iy / cand.area >= GROUP_PART_INSIDE:
            return True
    return False


def _unflip(cand: Candidate, width: int) -> Candidate:
    """A candidate found in the mirrored image, in the original image's coordinates."""
    x0, y0, x1, y1 = cand.box
    return Candidate(np.array([width - x1, y0, width - x0, y1]), cand.score, cand.cls)


def _from_crop(
    candidates: list[Candidate], region: tuple[int, int, int, int], width: int, height: int
) -> list[Candidate]:
    """Shift zoom-pass boxes to image coordinates; drop those cut by an inner crop edge."""
    x0, y0, x1, y1 = region
    kept = []
    for cand in candidates:
        bx0, by0, bx1, by1 = cand.box + np.array([x0, y0, x0, y0])
        cut = (
            (x0 > 0 and bx0 - x0 < ZOOM_EDGE_PX)
            or (y0 > 0 and by0 - y0 < ZOOM_EDGE_PX)
            or (x1 < width and x1 - bx1 < ZOOM_EDGE_PX)
            or (y1 < height and y1 - by1 < ZOOM_EDGE_PX)
        )
        if not cut:
            kept.append(Candidate(np.array([bx0, by0, bx1, by1]), cand.score, cand.cls))
    return kept


def _is_group_box(cand: Candidate, others: list[Candidate]) -> bool:
    """True if two or more smaller same-class boxes lie inside ``cand`` and together fill it."""
    parts = []
    for other in others:
        if other is cand or other.cls != cand.cls or other.area >= 0.9 * cand.area:
            continue
        ix = max(0.0, min(cand.box[2], other.box[2]) - max(cand.box[0], other.box[0]))
        iy = max(0.0, min(cand.box[3], other.box[3]) - max(cand.box[1], other.box[1]))
        if other.area > 0 and ix * iy / other.area >= GROUP_PART_INSIDE:
            parts.append(other.box)
    if len(parts) < 2:
        return False
    grid = 64
    bx0, by0, bx1, by1 = cand.box
    covered = np.zeros((grid, grid), dtype=bool)
    xs = np.linspace(bx0, bx1, grid, endpoint=False) + (bx1 - bx0) / (2 * grid)
    ys = np.linspace(by0, by1, grid, endpoint=False) + (by1 - by0) / (2 * grid)
    for px0, py0, px1, py1 in parts:
        covered |= ((ys >= py0) & (ys <= py1))[:, None] & ((xs >= px0) & (xs <= px1))[None, :]
    return float(covered.mean()) >= GROUP_COVERAGE


def _to_box(box: np.ndarray) -> Box:
    return Box.of([round(float(v), 1) for v in box])


def _unit(score: float) -> float:
    return float(min(max(score, 0.0), 1.0))
