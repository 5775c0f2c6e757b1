"""More labelled pictures from COCO photos: mirror images and random crops, labels recomputed.

Labels stay exact because each comes from the annotations of the picture asked about:

- a horizontal *flip* keeps the photo's questions (from the question file) with left and right
  swapped in question and answer; counts, existence, sizes and above/below do not change. The
  swap agrees with questions generated afresh from the mirrored boxes (:func:`mirror_scene`;
  tests/test_distill_augment.py checks every spatial family);
- a *crop* clips each box to it. Visible fraction 0 (outside): the instance is gone; below
  ``min_visible``: it is *cut*, ambiguous like a faint one (never counted, never an answer, never
  a "no"); otherwise present with the clipped box, marked cut if partly outside (its mask area is
  unknown, so it is never compared by size). Faintness is judged against the crop's size, and
  every family (:data:`~vpagent.distill.questions.ALL_FAMILIES`) is generated on the crop;
- the *extra* families are also asked on the photos themselves (``augmentation: none``).

Only photos with questions in the question file are used, so that an export with the augmented
file adds no photo to the split (its validation photos stay the same).

Rows of augmented pictures name their photo in ``source_image``, so that export keeps them in
the photo's split. The same seed writes byte-identical files.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image, ImageOps
from pydantic import BaseModel, Field

from vpagent.distill.coco import CocoDataset, CocoImage, load_coco
from vpagent.distill.questions import (
    ALL_FAMILIES,
    EXTRA_FAMILIES,
    FAMILY_FUNCTIONS,
    Question,
    QuestionError,
    Rules,
    Scene,
    Thing,
    balance,
    build_scene,
    check_image,
    find_images_dir,
    image_reference,
    is_clear,
    pick,
    question_rows,
)
from vpagent.evaluation.datasets import EvalItem, load_dataset

QUESTIONS_FILE = "questions.jsonl"
CROP_SIDE = (0.55, 0.85)  # each side of a crop, as a share of the photo's
JPEG_QUALITY = 95
SOURCES = ("flip", "crop", "extra")
_SIDE_WORD = re.compile(r"\b(left|right)\b")
_OTHER_SIDE = {"left": "right", "right": "left"}
_EITHER_SIDE = "to the left or to the right of"  # a choice between both: the same after a flip

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class PendingImage:
    """An augmented picture to write once its rows are final: ``box`` crops, None mirrors."""

    photo: Path
    target: Path
    box: Box | None


class AugmentReport(BaseModel):
    """Questions per source (flip, crop, extra) and type, pictures written, rows left out."""

    photos: int = 0
    questions: int = 0
    per_source: dict[str, dict[str, int]] = Field(default_factory=dict)
    images: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)


def swap_sides(text: str) -> str:
    """``text`` with "left" and "right" swapped (a left-or-right choice reads the same)."""
    swapped = _SIDE_WORD.sub(lambda match: _OTHER_SIDE[match.group(1)], text)
    return swapped.replace("to the right or to the left of", _EITHER_SIDE)


def mirror_scene(scene: Scene) -> Scene:
    """The scene of the horizontally flipped picture (x -> width - x)."""
    things = [replace(thing, box=_mirrored(thing.box, scene.width)) for thing in scene.things]
    return Scene(scene.width, scene.height, things, scene.all_names, scene.rules)


def _mirrored(box: tuple[float, float, float, float], width: int) -> tuple[float, ...]:
    x0, y0, x1, y1 = box
    return (width - x1, y0, width - x0, y1)


def random_crop(width: int, height: int, rng: random.Random) -> Box:
    """A seeded crop ``(x0, y0, x1, y1)`` whose sides are 55-85% of the picture's."""
    w = max(1, round(width * rng.uniform(*CROP_SIDE)))
    h = max(1, round(height * rng.uniform(*CROP_SIDE)))
    x0, y0 = rng.randint(0, width - w), rng.randint(0, height - h)
    return (x0, y0, x0 + w, y0 + h)


def visible_fraction(box: tuple[float, float, float, float], crop: Box) -> float:
    """The share of ``box``'s area inside ``crop`` (a zero-area box: 1 inside, 0 outside)."""
    width = min(box[2], crop[2]) - max(box[0], crop[0])
    height = min(box[3], crop[3]) - max(box[1], crop[1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    if area <= 0:
        return float(width >= 0 and height >= 0)
    return max(width, 0) * max(height, 0) / area


def crop_thing(thing: Thing, crop: Box, rules: Rules, min_visible: float) -> Thing | None:
    """``thing`` in the crop's coordinates; None if outside, ambiguous if under ``min_visible``."""
    visible = visible_fraction(thing.box, crop)
    if visible == 0:
        return None
    x0, y0, x1, y1 = crop
    box = (max(thing.box[0], x0) - x0, max(thing.box[1], y0) - y0,
           min(thing.box[2], x1) - x0, min(thing.box[3], y1) - y0)  # fmt: skip
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    return replace(
        thing,
        box=box,
        area=min(thing.area, box_area),  # unknown once cut; cut things are never size-compared
        box_area=box_area,
        clear=visible >= min_visible and is_clear(box_area, x1 - x0, y1 - y0, rules),
        cut=visible < 1,
    )


def crop_scene(scene: Scene, crop: Box, min_visible: float) -> Scene:
    """The scene of the cropped picture (see the module docstring)."""
    cropped = (crop_thing(thing, crop, scene.rules, min_visible) for thing in scene.things)
    things = [thing for thing in cropped if thing is not None]
    return Scene(crop[2] - crop[0], crop[3] - crop[1], things, scene.all_names, scene.rules)


def flip_row(item: EvalItem, image: str, source_image: str) -> dict[str, object]:
    """The row of ``item`` asked about the mirrored picture: left and right swapped."""
    answers = [swap_sides(answer) for answer in item.answers]
    row: dict[str, object] = {
        "id": f"{item.id}-flip",
        "image": image,
        "question": swap_sides(item.question),
        "answer": answers[0],
        "type": item.type,
    }
    if answers[1:]:
        row["accept"] = answers[1:]
    for key in ("license", "license_url", "source"):
        if getattr(item, key) is not None:
            row[key] = getattr(item, key)
    return row | {"source_image": source_image, "augmentation": "flip"}


def questions_by_photo(questions: Path) -> dict[Path, list[EvalItem]]:
    """The items of the question file, by the resolved path of their picture."""
    by_photo: dict[Path, list[EvalItem]] = {}
    for item in load_dataset(questions):
        by_photo.setdefault(item.image.resolve(), []).append(item)
    return by_photo


@dataclass
class _Run:
    """What one augmentation run accumulates while it goes through the photos."""

    dataset: CocoDataset
    out: Path
    rules: Rules
    rng: random.Random
    per_image: int
    rows: list[tuple[str, dict[str, object]]]  # (source, row)
    pending: dict[str, PendingImage]  # by the rows' image reference
    skipped: Counter[str]

    def reference(self, path: Path) -> str:
        return image_reference(path, self.out)

    def add(self, source: str, rows: Iterable[dict[str, object]]) -> None:
        self.rows.extend((source, row) for row in rows)

    def generated(self, scene: Scene, families: Iterable[str], asked: set[str]) -> list[Question]:
        """Up to ``per_image`` questions on ``scene``, leaving out those already ``asked``."""
        groups = {family: FAMILY_FUNCTIONS[family](scene, self.rng) for family in families}
        return [q for q in pick(groups, self.per_image, self.rng) if q.question not in asked]


def _flip(run: _Run, image: CocoImage, photo: Path, asked: list[EvalItem]) -> None:
    flippable = [item for item in asked if item.type in ALL_FAMILIES]
    if len(flippable) < len(asked):
        other = len(asked) - len(flippable)
        run.skipped["flip: question type not made by `distill questions`"] += other
    if not flippable:
        return
    target = run.out.parent / "images" / f"{Path(image.file_name).stem}-flip.jpg"
    reference = run.reference(target)
    run.pending[reference] = PendingImage(photo, target, None)
    run.add("flip", (flip_row(item, reference, run.reference(photo)) for item in flippable))


def _crops(
    run: _Run, image: CocoImage, photo: Path, scene: Scene, crops: int, min_visible: float
) -> None:
    stem = Path(image.file_name).stem
    for number in range(1, crops + 1):
        box = random_crop(image.width, image.height, run.rng)
        chosen = run.generated(crop_scene(scene, box, min_visible), ALL_FAMILIES, set())
        if not chosen:
            run.skipped["crop: no unambiguous question"] += 1
            continue
        target = run.out.parent / "images" / f"{stem}-crop{number}.jpg"
        run.pending[run.reference(target)] = PendingImage(photo, target, box)
        extra = {"source_image": run.reference(photo), "augmentation": "crop"}
        prefix = f"{stem}-crop{number}"
        run.add("crop", question_rows(run.dataset, image, target, run.out, chosen,
                                      prefix=prefix, extra=extra))  # fmt: skip


def _extras(run: _Run, image: CocoImage, photo: Path, scene: Scene, asked: set[str]) -> None:
    chosen = run.generated(scene, EXTRA_FAMILIES, asked)
    if not chosen:
        run.skipped["extra: no unambiguous question"] += 1
        return
    prefix = f"{Path(image.file_name).stem}-extra"
    extra = {"augmentation": "none"}
    run.add("extra", question_rows(run.dataset, image, photo, run.out, chosen,
                                   prefix=prefix, extra=extra))  # fmt: skip


def augment(
    annotations: Path,
    questions: Path,
    out_dir: Path,
    *,
    images: Path | None = None,
    crops: int = 2,
    flip: bool = True,
    min_visible: float = 0.7,
    seed: int = 0,
    per_image: int = 8,
    rules: Rules | None = None,
) -> tuple[list[dict[str, object]], AugmentReport]:
    """Flipped and cropped pictures, written under ``out_dir/images``, and the rows of
    ``out_dir/questions.jsonl`` (for the caller to write with ``write_jsonl``)."""
    if not 0 < min_visible <= 1:
        raise QuestionError("--min-visible must be above 0 and at most 1")
    if crops < 0 or per_image < 1:
        raise QuestionError("--crops must be at least 0 and --per-image at least 1")
    rules = rules or Rules()
    dataset = load_coco(annotations)
    folder = find_images_dir(dataset, images)
    by_photo = questions_by_photo(questions)
    out = out_dir / QUESTIONS_FILE
    run = _Run(dataset, out, rules, random.Random(seed), per_image, [], {}, Counter())
    photos = 0
    for image in dataset.images:
        photo = folder / image.file_name
        asked = by_photo.pop(photo.resolve(), [])
        reason = check_image(photo, image)
        if reason:
            run.skipped[reason] += 1
            continue
        if not asked:  # a photo new to the split would move other photos between splits
            run.skipped["photo without questions in the question file"] += 1
            continue
        photos += 1
        scene = build_scene(dataset, image, rules)
        if flip:
            _flip(run, image, photo, asked)
        _crops(run, image, photo, scene, crops, min_visible)
        _extras(run, image, photo, scene, {item.question for item in asked})
    if by_photo:
        run.skipped["question's picture not in the annotations"] = sum(map(len, by_photo.values()))
    rows = _balanced(run)
    _write_images(run.pending, {str(row["image"]) for row in rows})
    return rows, _report(photos, run, rows)


def _balanced(run: _Run) -> list[dict[str, object]]:
    """The rows with each generated source balanced on its own (flips mirror a balanced file)."""
    kept = [row for source, row in run.rows if source == "flip"]
    for source in ("crop", "extra"):
        rows = [row for kind, row in run.rows if kind == source]
        rows, dropped = balance(rows, run.rules.max_answer_share, run.rng)
        kept.extend(rows)
        if dropped:
            run.skipped[f"{source}: answer too frequent for its type"] = dropped
    ids = {id(row) for row in kept}
    return [row for _, row in run.rows if id(row) in ids]


def _write_images(pending: dict[str, PendingImage], used: set[str]) -> None:
    """Write the augmented pictures some row still uses (JPEG, each renamed into place)."""
    for reference, job in pending.items():
        if reference not in used:
            continue
        job.target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(job.photo) as opened:
            picture = opened.convert("RGB")
        picture = ImageOps.mirror(picture) if job.box is None else picture.crop(job.box)
        temporary = job.target.with_name(job.target.name + ".tmp")
        picture.save(temporary, format="JPEG", quality=JPEG_QUALITY)
        temporary.replace(job.target)


def _report(photos: int, run: _Run, rows: list[dict[str, object]]) -> AugmentReport:
    kept = {id(row) for row in rows}
    used = {str(row["image"]) for row in rows}
    per_source: dict[str, Counter[str]] = {source: Counter() for source in SOURCES}
    for source, row in run.rows:
        if id(row) in kept:
            per_source[source][str(row["type"])] += 1
    images = Counter(
        "flip" if job.box is None else "crop"
        for reference, job in run.pending.items()
        if reference in used
    )
    return AugmentReport(
        photos=photos,
        questions=len(rows),
        per_source={s: dict(sorted(c.items())) for s, c in per_source.items()},
        images=dict(sorted(images.items())),
        skipped=dict(sorted(run.skipped.items())),
    )
