"""Counting calibration of the offline detector on the training photos of a COCO folder.

`vpagent distill calibrate-counts DATA` asks "How many X are there?" of every category on each
*training* photo whose instances are all clear (the question generator's rules: no crowd, none
faint, at most ``max_count``) and, paired with each, of one category absent from the photo (drawn
as the generator draws its "no" existence questions; the answer is 0, so a threshold low enough
to invent boxes pays for them), counts the detector's boxes of X, and chooses the detector's
settings by exact count accuracy (ties: mean absolute error): the tiled pass (grid), the mirrored
pass, the NMS overlap that merges duplicates across the whole-image, zoom and tile passes, one
score threshold, then per-class thresholds for the classes with enough training questions. The
photos are split as `vpagent distill export` splits them (a seeded shuffle of the photos' sha256,
``val_fraction`` to validation); the validation photos are never looked at here.

Network passes and classifier calls are cached per crop, so the search re-runs only the cheap
merging steps. The choice is written as JSON (:data:`CALIBRATION_FILE` is the one the detector
reads by default).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.distill.coco import CocoDataset, CocoImage, load_coco
from vpagent.distill.export import split_images
from vpagent.distill.questions import Rules, build_scene, count_questions, plural
from vpagent.llm.packs import sha256_file
from vpagent.tools.offline import detector as ssd
from vpagent.tools.offline.classifier import EfficientNetClassifier, shared_classifier
from vpagent.tools.offline.detector import CALIBRATION_FILE, Calibration, SSDCocoDetector

TILE_GRIDS = (0, 2)  # a 3x3 grid (9 more network passes a photo) never won a search on coco128
FLIPS = (False, True)
NMS_IOUS = (0.3, 0.4, 0.5, 0.6)
THRESHOLDS = tuple(round(0.15 + 0.05 * i, 2) for i in range(10))  # 0.15 .. 0.6
MIN_CLASS_ITEMS = 8  # a class gets its own threshold only with this many training questions
MIN_CLASS_GAIN = 2  # ... and only if it answers this many more of them right
CACHE_FLOOR = 0.1  # network candidates are cached down to this score
SIZES = (("1", 1, 1), ("2-4", 2, 4), ("5+", 5, 10**6))


@dataclass(frozen=True)
class CountItem:
    """'How many X are there?' about one photo, answered by its annotations."""

    image_id: int
    file: str
    name: str
    question: str
    answer: int


@dataclass
class Split:
    train: list[CocoImage]
    validation: list[CocoImage]


def photo_split(
    dataset: CocoDataset, images_dir: Path, val_fraction: float = 0.2, seed: int = 0
) -> Split:
    """The photos with annotations split as `distill export` splits them: by sha256, seeded."""
    annotated = [image for image in dataset.images if dataset.by_image.get(image.id)]
    hashes = {image.id: sha256_file(images_dir / image.file_name) for image in annotated}
    validation = split_images(set(hashes.values()), val_fraction, seed)
    return Split(
        train=[image for image in annotated if hashes[image.id] not in validation],
        validation=[image for image in annotated if hashes[image.id] in validation],
    )


def count_items(dataset: CocoDataset, images: Iterable[CocoImage], rules: Rules) -> list[CountItem]:
    """Every count question the generator's rules allow on ``images`` (all of them, no sampling)."""
    items = []
    for image in images:
        scene = build_scene(dataset, image, rules)
        for group in count_questions(scene, random.Random(0)):
            question = group[0]
            name = _name_of(question.question, scene.names)
            items.append(
                CountItem(image.id, image.file_name, name, question.question, int(question.answer))
            )
    return items


def absent_items(
    dataset: CocoDataset, images: Iterable[CocoImage], rules: Rules
) -> list[CountItem]:
    """One "How many X are there?" (answer 0) per count question of each photo, X a category
    absent from it, drawn (seeded by the photo) as the generator draws its "no" questions."""
    items = []
    for image in images:
        scene = build_scene(dataset, image, rules)
        wanted = len(count_questions(scene, random.Random(0)))
        present = set(scene.names)
        absent = [name for name in scene.all_names if name not in present]
        for name in random.Random(image.id).sample(absent, min(len(absent), wanted)):
            text = f"How many {plural(name)} are there?"
            items.append(CountItem(image.id, image.file_name, name, text, 0))
    return items


def _name_of(question: str, names: Sequence[str]) -> str:
    for name in names:
        if question == f"How many {plural(name)} are there?":
            return name
    raise ValueError(f"no category in {question!r}")


def score_counts(answers: Sequence[int], truths: Sequence[int]) -> dict[str, Any]:
    """Exact accuracy (Wilson 95% interval), MAE, and both per size of the true count."""
    if len(answers) != len(truths):
        raise ValueError(f"{len(answers)} answers but {len(truths)} truths")
    result = _score(answers, truths)
    result["per_size"] = {}
    for label, low, high in SIZES:
        picked = [(a, t) for a, t in zip(answers, truths, strict=True) if low <= t <= high]
        result["per_size"][label] = _score([a for a, _ in picked], [t for _, t in picked])
    return result


def _score(answers: Sequence[int], truths: Sequence[int]) -> dict[str, Any]:
    n = len(truths)
    right = sum(a == t for a, t in zip(answers, truths, strict=True))
    errors = [abs(a - t) for a, t in zip(answers, truths, strict=True)]
    return {
        "n": n,
        "correct": right,
        "accuracy": right / n if n else None,
        "interval_95": list(wilson(right, n)) if n else None,
        "mae": sum(errors) / n if n else None,
    }


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5 / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


class _CachedClassifier:
    """The ImageNet classifier with its answers cached per crop (the search repeats crops)."""

    def __init__(self, inner: EfficientNetClassifier) -> None:
        self.inner = inner
        self.cache: dict[str, np.ndarray] = {}

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        key = _digest(image)
        if key not in self.cache:
            self.cache[key] = self.inner.probabilities(image)
        return self.cache[key]

    def category_mass(self, probs: np.ndarray) -> dict[str, float]:
        return self.inner.category_mass(probs)


class CachedDetector(SSDCocoDetector):
    """The detector with network passes cached per crop, down to CACHE_FLOOR."""

    def __init__(self, **options: Any) -> None:
        classifier = _CachedClassifier(shared_classifier())
        super().__init__(classifier=classifier, **options)  # type: ignore[arg-type]
        self.cache: dict[str, list[ssd.Candidate]] = {}

    def forward(
        self, images: list[np.ndarray], min_score: float = ssd.CANDIDATE_THRESHOLD
    ) -> list[list[ssd.Candidate]]:
        keys = [_digest(image) for image in images]
        missing = [i for i, key in enumerate(keys) if key not in self.cache]
        if missing:
            found = super().forward([images[i] for i in missing], CACHE_FLOOR)
            for i, cands in zip(missing, found, strict=True):
                self.cache[keys[i]] = cands
        return [[c for c in self.cache[key] if c.score >= min_score] for key in keys]

    def configure(self, settings: Calibration) -> None:
        """Use ``settings`` for the next detections (the cache stays)."""
        self.calibration = settings
        self.score_threshold = settings.score_threshold
        self.nms_iou = settings.nms_iou
        self.tiles = settings.tiles
        self.flip = settings.flip


def _digest(image: np.ndarray) -> str:
    digest = hashlib.sha1(np.ascontiguousarray(image).data, usedforsecurity=False)
    digest.update(str(image.shape).encode())
    return digest.hexdigest()


@dataclass
class Photos:
    """Decoded photos by file name (each read once)."""

    folder: Path
    pixels: dict[str, np.ndarray] = field(default_factory=dict)

    def __call__(self, file: str) -> np.ndarray:
        if file not in self.pixels:
            from PIL import Image as PILImage

            with PILImage.open(self.folder / file) as image:
                self.pixels[file] = np.asarray(image.convert("RGB"))
        return self.pixels[file]


def detector_counts(
    detector: SSDCocoDetector, items: Sequence[CountItem], photos: Callable[[str], np.ndarray]
) -> list[int]:
    """What ``image.count(X)`` returns for each item: the detector's boxes of X."""
    return [len(detector.detect(photos(item.file), [item.name])) for item in items]


def _scores_by_threshold(
    detector: CachedDetector,
    settings: Calibration,
    items: Sequence[CountItem],
    photos: Callable[[str], np.ndarray],
) -> dict[float, list[int]]:
    """Counts per item for every threshold of the grid (the rest of ``settings`` fixed)."""
    out: dict[float, list[int]] = {}
    for threshold in THRESHOLDS:
        detector.configure(
            Calibration(
                score_threshold=threshold,
                nms_iou=settings.nms_iou,
                tiles=settings.tiles,
                flip=settings.flip,
            )
        )
        out[threshold] = detector_counts(detector, items, photos)
    return out


def _key(answers: Sequence[int], truths: Sequence[int]) -> tuple[int, float]:
    right = sum(a == t for a, t in zip(answers, truths, strict=True))
    mae = sum(abs(a - t) for a, t in zip(answers, truths, strict=True))
    return (right, -mae)


def calibrate(
    items: Sequence[CountItem],
    photos: Callable[[str], np.ndarray],
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[Calibration, list[dict[str, Any]]]:
    """The settings with the most exact counts on ``items`` (training photos only), and the
    search's log (every setting tried with its training accuracy and MAE)."""
    detector = CachedDetector()
    truths = [item.answer for item in items]
    log: list[dict[str, Any]] = []
    best: tuple[tuple[int, float], Calibration, dict[float, list[int]]] | None = None
    for tiles, flip, nms_iou in itertools.product(TILE_GRIDS, FLIPS, NMS_IOUS):
        base = Calibration(score_threshold=0.5, nms_iou=nms_iou, tiles=tiles, flip=flip)
        by_threshold = _scores_by_threshold(detector, base, items, photos)
        for threshold, answers in by_threshold.items():
            key = _key(answers, truths)
            log.append(
                {
                    "tiles": tiles,
                    "flip": flip,
                    "nms_iou": nms_iou,
                    "score_threshold": threshold,
                    "correct": key[0],
                    "mae": -key[1] / len(items),
                }
            )
            if best is None or key > best[0]:
                settings = Calibration(
                    score_threshold=threshold, nms_iou=nms_iou, tiles=tiles, flip=flip
                )
                best = (key, settings, by_threshold)
        progress(f"tiles {tiles} flip {flip} nms {nms_iou}: best so far {best[0][0]}/{len(items)}")
    assert best is not None
    _, chosen, by_threshold = best
    chosen.class_thresholds = class_thresholds(items, by_threshold, chosen.score_threshold)
    return chosen, log


def class_thresholds(
    items: Sequence[CountItem], by_threshold: dict[float, list[int]], default: float
) -> dict[str, float]:
    """Per-class thresholds where a class has MIN_CLASS_ITEMS training questions and its own
    threshold answers at least MIN_CLASS_GAIN more of them right than ``default``.

    Each class's count depends only on its own threshold, so classes are chosen one by one."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_class[item.name].append(index)
    chosen = {}
    for name, indices in sorted(by_class.items()):
        if len(indices) < MIN_CLASS_ITEMS:
            continue
        truths = [items[i].answer for i in indices]

        def key(threshold: float, indices: list[int] = indices, truths: list[int] = truths) -> Any:
            return _key([by_threshold[threshold][i] for i in indices], truths)

        best = max(THRESHOLDS, key=lambda t: (key(t), -abs(t - default)))
        if key(best)[0] - key(default)[0] >= MIN_CLASS_GAIN:
            chosen[name] = best
    return chosen


def run(
    data: Path,
    out: Path = CALIBRATION_FILE,
    val_fraction: float = 0.2,
    seed: int = 0,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Calibrate on the training photos of ``data`` (images/ + instances.json); write ``out``."""
    dataset = load_coco(data / "instances.json")
    split = photo_split(dataset, data / "images", val_fraction, seed)
    items = count_items(dataset, split.train, Rules())
    absent = absent_items(dataset, split.train, Rules())
    photos = Photos(data / "images")
    chosen, log = calibrate(items + absent, photos, progress)
    detector = CachedDetector()
    detector.configure(chosen)
    answers = detector_counts(detector, items, photos)
    absent_answers = detector_counts(detector, absent, photos)
    record = {
        **chosen.model_dump(),
        "chosen_by": (
            "exact count accuracy (ties: MAE) of 'How many X are there?' on the training photos, "
            "X each clearly countable category and as many absent ones (answer 0)"
        ),
        "data": dataset.description,
        "split": {
            "val_fraction": val_fraction,
            "seed": seed,
            "train_photos": len(split.train),
            "validation_photos": len(split.validation),
        },
        "train": score_counts(answers, [item.answer for item in items]),
        "train_absent": score_counts(absent_answers, [0] * len(absent)),
        "search": log,
    }
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record
