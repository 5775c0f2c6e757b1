"""Counting calibration of the offline detector on the training photos of a COCO folder.

`vpagent distill calibrate-counts DATA` asks "How many X are there?" on each *training* photo of
every category whose instances are all clear (the question generator's rules: no crowd, none
faint, at most ``max_count``), and of categories absent from the photo (answer 0): as many as
there are counted ones, drawn as the generator draws its "no" existence questions, plus every
absent category the search's loosest setting reports there (the boxes a low threshold would
invent). It counts the detector's boxes of X and chooses the detector's settings by balanced
exact-count accuracy, half on the counted categories and half on the absent ones (ties: mean
absolute error): the tiled pass (grid), the mirrored pass, the NMS overlap that merges
duplicates across the whole-image, zoom and tile passes, one score threshold, then per-class
thresholds for the classes with enough training questions. The photos are split as `vpagent
distill export` splits them (a seeded shuffle of the photos' sha256, ``val_fraction`` to
validation); the validation photos are never looked at here.

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
from vpagent.evaluation.stats import wilson
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
        detector.calibration = settings.model_copy(
            update={"score_threshold": threshold, "class_thresholds": {}}
        )
        out[threshold] = detector_counts(detector, items, photos)
    return out


def _key(
    answers: Sequence[int], truths: Sequence[int], weights: Sequence[float]
) -> tuple[float, float]:
    """(weighted exact counts, minus weighted absolute error): higher is better."""
    rows = list(zip(answers, truths, weights, strict=True))
    right = sum(w for a, t, w in rows if a == t)
    error = sum(w * abs(a - t) for a, t, w in rows)
    return (round(right, 9), -round(error, 9))


def balanced_weights(present: int, absent: int) -> list[float]:
    """Weights that make the counted and the absent categories count half each."""
    return [0.5 / present] * present + [0.5 / absent] * absent


def calibrate(
    present: Sequence[CountItem],
    absent: Sequence[CountItem],
    photos: Callable[[str], np.ndarray],
    progress: Callable[[str], None] = lambda _: None,
    detector: CachedDetector | None = None,
) -> tuple[Calibration, list[dict[str, Any]]]:
    """The settings with the best balanced exact-count accuracy (ties: MAE) over the counted
    categories ``present`` and the ``absent`` ones (answer 0), training photos only, and the
    search's log (every setting tried with its accuracy on each)."""
    detector = detector or CachedDetector()
    items = [*present, *absent]
    truths = [item.answer for item in items]
    weights = balanced_weights(len(present), len(absent))
    log: list[dict[str, Any]] = []
    best: tuple[tuple[float, float], Calibration, dict[float, list[int]]] | None = None
    for tiles, flip, nms_iou in itertools.product(TILE_GRIDS, FLIPS, NMS_IOUS):
        base = Calibration(score_threshold=0.5, nms_iou=nms_iou, tiles=tiles, flip=flip)
        by_threshold = _scores_by_threshold(detector, base, items, photos)
        for threshold, answers in by_threshold.items():
            key = _key(answers, truths, weights)
            right = [a == t for a, t in zip(answers, truths, strict=True)]
            log.append(
                {
                    "tiles": tiles,
                    "flip": flip,
                    "nms_iou": nms_iou,
                    "score_threshold": threshold,
                    "present_correct": sum(right[: len(present)]),
                    "absent_correct": sum(right[len(present) :]),
                    "balanced_accuracy": key[0],
                    "balanced_mae": -key[1],
                }
            )
            if best is None or key > best[0]:
                settings = Calibration(
                    score_threshold=threshold, nms_iou=nms_iou, tiles=tiles, flip=flip
                )
                best = (key, settings, by_threshold)
        progress(f"tiles {tiles} flip {flip} nms {nms_iou}: best so far {best[0][0]:.3f}")
    assert best is not None
    _, chosen, by_threshold = best
    chosen.class_thresholds = class_thresholds(items, weights, by_threshold, chosen.score_threshold)
    return chosen, log


def class_thresholds(
    items: Sequence[CountItem],
    weights: Sequence[float],
    by_threshold: dict[float, list[int]],
    default: float,
) -> dict[str, float]:
    """Per-class thresholds where a class has MIN_CLASS_ITEMS training questions and its own
    threshold answers at least MIN_CLASS_GAIN more of them right than ``default`` (and the
    weighted score is not lower).

    Each class's count depends only on its own threshold, so classes are chosen one by one."""
    by_class: dict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        by_class[item.name].append(index)
    chosen = {}
    for name, indices in sorted(by_class.items()):
        if len(indices) < MIN_CLASS_ITEMS:
            continue
        truths = [items[i].answer for i in indices]
        mine = [weights[i] for i in indices]

        def key(
            threshold: float,
            indices: list[int] = indices,
            truths: list[int] = truths,
            mine: list[float] = mine,
        ) -> Any:
            answers = [by_threshold[threshold][i] for i in indices]
            right = sum(a == t for a, t in zip(answers, truths, strict=True))
            return (_key(answers, truths, mine)[0], right)

        best = max(THRESHOLDS, key=lambda t: (key(t), -abs(t - default)))
        if key(best)[1] - key(default)[1] >= MIN_CLASS_GAIN and key(best)[0] >= key(default)[0]:
            chosen[name] = best
    return chosen


def confusable_items(
    dataset: CocoDataset,
    images: Iterable[CocoImage],
    detector: SSDCocoDetector,
    photos: Callable[[str], np.ndarray],
) -> list[CountItem]:
    """ "How many X are there?" (answer 0) for every category absent from a photo's annotations
    that the search's most permissive setting (finest tiles, mirrored pass, loosest NMS, lowest
    threshold) reports on it: the boxes a low threshold would invent."""
    loosest = Calibration(
        score_threshold=min(THRESHOLDS),
        nms_iou=max(NMS_IOUS),
        tiles=max(TILE_GRIDS),
        flip=any(FLIPS),
    )
    previous = detector.calibration
    detector.calibration = loosest
    items = []
    for image in images:
        annotated = {dataset.category_name(note) for note in dataset.by_image.get(image.id, [])}
        found = {d.label for d in detector.detect_all(photos(image.file_name))}
        for name in sorted(found - annotated):
            text = f"How many {plural(name)} are there?"
            items.append(CountItem(image.id, image.file_name, name, text, 0))
    detector.calibration = previous
    return items


def zero_count_items(
    dataset: CocoDataset,
    images: Sequence[CocoImage],
    detector: SSDCocoDetector,
    photos: Callable[[str], np.ndarray],
) -> list[CountItem]:
    """The absent categories asked about ``images`` (answer 0): those drawn as the generator
    draws (:func:`absent_items`), then the confusable ones (:func:`confusable_items`) not
    already asked."""
    drawn = absent_items(dataset, images, Rules())
    asked = {(item.image_id, item.name) for item in drawn}
    confusable = confusable_items(dataset, images, detector, photos)
    return drawn + [item for item in confusable if (item.image_id, item.name) not in asked]


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
    photos = Photos(data / "images")
    detector = CachedDetector()
    present = count_items(dataset, split.train, Rules())
    absent = zero_count_items(dataset, split.train, detector, photos)
    progress(f"{len(present)} counted categories, {len(absent)} absent ones")
    chosen, log = calibrate(present, absent, photos, progress, detector)
    detector.calibration = chosen
    record = {
        **chosen.model_dump(),
        "chosen_by": (
            "balanced exact-count accuracy (ties: MAE) of 'How many X are there?' on the "
            "training photos: half on each clearly countable category, half on absent ones "
            "(answer 0: as many drawn as the generator draws its 'no' questions, and every one "
            "the loosest setting reports)"
        ),
        "data": dataset.description,
        "split": {
            "val_fraction": val_fraction,
            "seed": seed,
            "train_photos": len(split.train),
            "validation_photos": len(split.validation),
        },
        "train": score_counts(
            detector_counts(detector, present, photos), [item.answer for item in present]
        ),
        "train_absent": score_counts(detector_counts(detector, absent, photos), [0] * len(absent)),
        "search": log,
    }
    out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record
