"""GQA-style labelled questions from COCO instance annotations.

Every answer is computed from the annotations (boxes, areas, categories), never from a model.
Anything a careful person could answer two ways is not emitted:

- an instance smaller than ``Rules.min_area_fraction`` of the picture is *faint*: a person may or
  may not count it, so a category with a faint or crowd instance is never counted, never called
  "the only X", and never an answer;
- two objects are only related along an axis when their boxes are apart along it by at least
  ``Rules.min_gap_fraction`` of the picture (no overlap, no near-tie);
- sizes are only compared when both the mask and the box areas differ by ``Rules.size_ratio``;
- "no" existence answers name categories with no annotation at all in the picture;
- within a type, no answer may make up more than ``Rules.max_answer_share`` of the questions
  (most pictures hold one dog: without this, "1" would answer most count questions).

One small function per question family. The default six (:data:`FAMILIES`) are what
``vpagent distill questions`` asks unless told otherwise; :data:`EXTRA_FAMILIES` add supercategory
counts, two-category existence, count comparisons, the biggest object and two-step relations.
:func:`generate` picks, per image, up to ``per_image`` questions round-robin over the families
with a seeded random generator, so the same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from vpagent.distill.coco import CocoDataset, CocoImage, load_coco

FAMILIES = ("count", "exist", "spatial", "size", "object", "compose")
EXTRA_FAMILIES = ("count_group", "exist_both", "compare_count", "largest", "two_hop")
ALL_FAMILIES = FAMILIES + EXTRA_FAMILIES
GROUPS = {"animal": "animals", "vehicle": "vehicles"}  # supercategories with an everyday name
INVARIANT_PLURALS = {"sheep", "skis", "scissors", "broccoli", "deer", "fish"}
IRREGULAR_PLURALS = {"person": "people", "mouse": "mice", "knife": "knives", "man": "men"}
MASS_NOUNS = {"broccoli"}  # COCO annotates clumps of it
PLURAL_ONLY = {"skis", "scissors"}  # one instance is a pair: "how many skis?" has two answers
UNCOUNTABLE = MASS_NOUNS | PLURAL_ONLY
SYNONYMS = {  # extra accepted answers for COCO names a person words differently
    "dining table": ["table"],
    "cell phone": ["phone", "mobile phone"],
    "tv": ["television"],
    "couch": ["sofa"],
    "motorcycle": ["motorbike"],
    "airplane": ["plane", "aeroplane"],
    "person": ["man", "woman", "people"],
    "potted plant": ["plant"],
    "sports ball": ["ball"],
    "hair drier": ["hair dryer"],
    "wine glass": ["glass"],
    "teddy bear": ["teddy"],
}
AXES = {"x": ("left", "right"), "y": ("above", "below")}
SIDES = [("x", -1, "left"), ("x", 1, "right"), ("y", -1, "above"), ("y", 1, "below")]
RELATION = {
    "left": "to the left of",
    "right": "to the right of",
    "above": "above",
    "below": "below",
}


class QuestionError(ValueError):
    """Generation cannot start (no images found, bad options); one clear line."""


class Rules(BaseModel):
    """The thresholds against ambiguity (see the module docstring)."""

    min_area_fraction: float = Field(default=0.002, ge=0, lt=1)
    min_gap_fraction: float = Field(default=0.01, ge=0, lt=1)
    size_ratio: float = Field(default=2.0, gt=1)
    max_count: int = Field(default=8, ge=1)
    max_answer_share: float = Field(default=0.5, gt=0, le=1)


class Question(BaseModel):
    type: str
    question: str
    answer: str
    accept: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Thing:
    """One annotated instance, reduced to what the questions use."""

    name: str
    box: tuple[float, float, float, float]
    area: float
    box_area: float
    clear: bool
    crowd: bool
    group: str | None = None  # the COCO supercategory
    cut: bool = False  # partly cropped away: its mask area is unknown, so sizes are not compared

    def centre(self, axis: str) -> float:
        low, high = (self.box[0], self.box[2]) if axis == "x" else (self.box[1], self.box[3])
        return (low + high) / 2


@dataclass
class Scene:
    """One picture's instances, with the questions' notions of countable and unique."""

    width: int
    height: int
    things: list[Thing]
    all_names: Sequence[str]
    rules: Rules

    def instances(self, name: str) -> list[Thing]:
        return [thing for thing in self.things if thing.name == name]

    @property
    def names(self) -> list[str]:
        return sorted({thing.name for thing in self.things})

    def countable(self, name: str) -> bool:
        found = self.instances(name)
        return bool(found) and all(t.clear and not t.crowd for t in found)

    def unique(self, name: str) -> Thing | None:
        found = self.instances(name)
        return found[0] if len(found) == 1 and self.countable(name) else None

    def uniques(self) -> list[Thing]:
        return [thing for name in self.names if (thing := self.unique(name)) is not None]

    def side(self, thing: Thing, anchor: Thing, axis: str) -> int:
        """-1 if ``thing`` is clearly left of / above ``anchor``, 1 if right / below, else 0."""
        gap = self.rules.min_gap_fraction * (self.width if axis == "x" else self.height)
        low, high = (0, 2) if axis == "x" else (1, 3)
        if thing.box[high] + gap <= anchor.box[low]:
            return -1
        if anchor.box[high] + gap <= thing.box[low]:
            return 1
        return 0


def plural(name: str) -> str:
    """English plural of a category name (the last word is inflected)."""
    head, _, last = name.rpartition(" ")
    if last in INVARIANT_PLURALS:
        word = last
    elif last in IRREGULAR_PLURALS:
        word = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in set("aeiou"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return f"{head} {word}" if head else word


def there_is(name: str) -> str:
    """'Is there a cup' / 'Is there an apple' / 'Are there any skis' / 'Is there any broccoli'."""
    if name in PLURAL_ONLY:
        return f"Are there any {name}"
    if name in MASS_NOUNS:
        return f"Is there any {name}"
    return f"Is there {indefinite(name)}"


def indefinite(name: str) -> str:
    """'a cup' / 'an apple' / 'some skis' / 'some broccoli'."""
    if name in UNCOUNTABLE:
        return f"some {name}"
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


def _accept(name: str) -> list[str]:
    return list(SYNONYMS.get(name, []))


def count_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'How many cups are there?' for every category whose instances are all clear."""
    groups = []
    for name in scene.names:
        n = len(scene.instances(name))
        if name in UNCOUNTABLE or not scene.countable(name) or n > scene.rules.max_count:
            continue
        text = f"How many {plural(name)} are there?"
        groups.append([Question(type="count", question=text, answer=str(n))])
    return groups


def exist_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """A yes (clearly visible category) paired with a no (category absent from the picture)."""
    present = set(scene.names)
    absent = [name for name in scene.all_names if name not in present]
    seen = [name for name in scene.names if any(t.clear for t in scene.instances(name))]
    groups = []
    for name, missing in zip(seen, rng.sample(absent, min(len(absent), len(seen))), strict=False):
        groups.append(
            [
                Question(type="exist", question=f"{there_is(name)} in the picture?", answer="yes"),
                Question(
                    type="exist", question=f"{there_is(missing)} in the picture?", answer="no"
                ),
            ]
        )
    return groups


def spatial_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """Left/right and above/below between two objects that are each the only one of their kind."""
    groups = []
    uniques = scene.uniques()
    for i, first in enumerate(uniques):
        for second in uniques[i + 1 :]:
            for axis, (before, after) in AXES.items():
                side = scene.side(first, second, axis)
                if side == 0:
                    continue
                subject, anchor = (first, second) if rng.random() < 0.5 else (second, first)
                where = before if scene.side(subject, anchor, axis) < 0 else after
                groups.append([_spatial_wording(subject, anchor, axis, where, rng)])
    return groups


def _spatial_wording(
    subject: Thing, anchor: Thing, axis: str, where: str, rng: random.Random
) -> Question:
    before, after = AXES[axis]
    if rng.random() < 0.5:  # choose between the two relations
        options = "to the left or to the right of" if axis == "x" else "above or below"
        text = f"Is the {subject.name} {options} the {anchor.name}?"
        return Question(type="spatial", question=text, answer=where)
    asked = where if rng.random() < 0.5 else (after if where == before else before)
    text = f"Is the {subject.name} {RELATION[asked]} the {anchor.name}?"
    return Question(type="spatial", question=text, answer="yes" if asked == where else "no")


def size_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'Which takes up more of the picture, the dog or the car?' for clearly different areas."""
    groups = []
    uniques = scene.uniques()
    ratio = scene.rules.size_ratio
    for i, first in enumerate(uniques):
        for second in uniques[i + 1 :]:
            big, small = (first, second) if first.area >= second.area else (second, first)
            if (
                big.cut
                or small.cut
                or big.area < ratio * small.area
                or big.box_area < ratio * small.box_area
            ):
                continue
            left, right = (first, second) if rng.random() < 0.5 else (second, first)
            more = rng.random() < 0.5
            text = (
                f"Which takes up {'more' if more else 'less'} of the picture, "
                f"the {left.name} or the {right.name}?"
            )
            answer = big.name if more else small.name
            groups.append([Question(type="size", question=text, answer=answer)])
    return groups


def beside(scene: Scene, anchor: Thing, axis: str, sign: int) -> list[Thing] | None:
    """Everything whose centre is on side ``sign`` of ``anchor`` along ``axis``, or None unless
    all of it is clear, not crowd and clearly apart from the anchor on that side."""
    centre = anchor.centre(axis)
    others = [
        thing
        for thing in scene.things
        if thing is not anchor and (thing.centre(axis) - centre) * sign > 0
    ]
    if not all(
        thing.clear and not thing.crowd and scene.side(thing, anchor, axis) == sign
        for thing in others
    ):
        return None
    return others


def sole_name(things: list[Thing] | None) -> str | None:
    """The category of ``things`` when they are all of one, else None."""
    names = {thing.name for thing in things or []}
    return names.pop() if len(names) == 1 else None


def object_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'What is to the left of the bus?' when everything on that side is one clear category."""
    groups = []
    for anchor in scene.uniques():
        for axis, sign, where in SIDES:
            name = sole_name(beside(scene, anchor, axis, sign))
            if name is None:
                continue
            text = f"What is {RELATION[where]} the {anchor.name}?"
            groups.append(
                [Question(type="object", question=text, answer=name, accept=_accept(name))]
            )
    return groups


def compose_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """Two steps: 'How many cups are to the left of the bowl?', 'Is there a dog below the car?'."""
    groups = []
    for anchor in scene.uniques():
        for name in scene.names:
            if name == anchor.name or name in UNCOUNTABLE or not scene.countable(name):
                continue
            found = scene.instances(name)
            for axis, directions in AXES.items():
                sides = [scene.side(thing, anchor, axis) for thing in found]
                if 0 in sides or len(found) > scene.rules.max_count:
                    continue
                sign = rng.choice((-1, 1))
                where = directions[0] if sign < 0 else directions[1]
                relation = RELATION[where]
                hits = sides.count(sign)
                if rng.random() < 0.5:
                    text = f"How many {plural(name)} are {relation} the {anchor.name}?"
                    answer = str(hits)
                else:
                    text = f"{there_is(name)} {relation} the {anchor.name}?"
                    answer = "yes" if hits else "no"
                groups.append([Question(type="compose", question=text, answer=answer)])
    return groups


def count_group_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'How many animals are there?' when every animal is clear ("0": none at all, faint or not)."""
    groups = []
    for group, words in GROUPS.items():
        found = [thing for thing in scene.things if thing.group == group]
        if len(found) > scene.rules.max_count or not all(t.clear and not t.crowd for t in found):
            continue
        text = f"How many {words} are there?"
        groups.append([Question(type="count_group", question=text, answer=str(len(found)))])
    return groups


def exist_both_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'Is there both a cup and a dog in the picture?': a yes (two clear categories) paired with
    a no (one of them and a category absent from the picture)."""
    present = set(scene.names)
    absent = [name for name in scene.all_names if name not in present]
    seen = [name for name in scene.names if any(t.clear for t in scene.instances(name))]
    groups = []
    for i, first in enumerate(seen):
        for second in seen[i + 1 :]:
            if not absent:
                return groups
            pairs = [
                ((first, second), "yes"),
                ((rng.choice((first, second)), rng.choice(absent)), "no"),
            ]
            groups.append([_both(*pair, answer, rng) for pair, answer in pairs])
    return groups


def _both(first: str, second: str, answer: str, rng: random.Random) -> Question:
    if rng.random() < 0.5:
        first, second = second, first
    text = f"Is there both {indefinite(first)} and {indefinite(second)} in the picture?"
    return Question(type="exist_both", question=text, answer=answer)


def compare_count_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'Are there more cups than dogs?' between countable categories, or one and an absent one."""
    counts = {
        name: len(scene.instances(name))
        for name in scene.names
        if name not in UNCOUNTABLE
        and scene.countable(name)
        and len(scene.instances(name)) <= scene.rules.max_count
    }
    present = set(scene.names)
    absent = [name for name in scene.all_names if name not in present | UNCOUNTABLE]
    names = list(counts)
    pairs = [(first, second) for i, first in enumerate(names) for second in names[i + 1 :]]
    if absent:
        pairs += [(name, rng.choice(absent)) for name in names]
    groups = []
    for pair in pairs:
        first, second = pair if rng.random() < 0.5 else pair[::-1]
        answer = "yes" if counts.get(first, 0) > counts.get(second, 0) else "no"
        text = f"Are there more {plural(first)} than {plural(second)}?"
        groups.append([Question(type="compare_count", question=text, answer=answer)])
    return groups


def largest_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'Which object takes up the most of the picture?' when one instance's mask and box are
    ``size_ratio`` times those of every other, all instances clear, whole and not crowd."""
    things = scene.things
    if len(things) < 2 or not all(t.clear and not t.crowd and not t.cut for t in things):
        return []
    big = max(things, key=lambda thing: thing.area)
    ratio = scene.rules.size_ratio
    if any(
        big.area < ratio * thing.area or big.box_area < ratio * thing.box_area
        for thing in things
        if thing is not big
    ):
        return []
    text = "Which object takes up the most of the picture?"
    return [[Question(type="largest", question=text, answer=big.name, accept=_accept(big.name))]]


def two_hop_questions(scene: Scene, rng: random.Random) -> list[list[Question]]:
    """'What is to the left of the thing above the bus?': the only thing on one side of a unique
    anchor, then the one clear category on a side of that thing (each step as in 'object')."""
    groups = []
    for anchor in scene.uniques():
        for axis, sign, where in SIDES:
            first = beside(scene, anchor, axis, sign)
            if first is None or len(first) != 1:
                continue
            for axis_2, sign_2, where_2 in SIDES:
                second = beside(scene, first[0], axis_2, sign_2)
                name = sole_name(second)
                if name is None or any(thing is anchor for thing in second or []):
                    continue
                text = f"What is {RELATION[where_2]} the thing {RELATION[where]} the {anchor.name}?"
                groups.append(
                    [Question(type="two_hop", question=text, answer=name, accept=_accept(name))]
                )
    return groups


FAMILY_FUNCTIONS: dict[str, Callable[[Scene, random.Random], list[list[Question]]]] = {
    "count": count_questions,
    "exist": exist_questions,
    "spatial": spatial_questions,
    "size": size_questions,
    "object": object_questions,
    "compose": compose_questions,
    "count_group": count_group_questions,
    "exist_both": exist_both_questions,
    "compare_count": compare_count_questions,
    "largest": largest_questions,
    "two_hop": two_hop_questions,
}


def resolve_types(types: Iterable[str]) -> list[str]:
    """The families named, in order and once each; "all" stands for every family."""
    named: list[str] = []
    for family in types:
        named.extend(ALL_FAMILIES if family == "all" else [family])
    families = list(dict.fromkeys(named))
    unknown = [family for family in families if family not in FAMILY_FUNCTIONS]
    if unknown or not families:
        raise QuestionError(
            f"unknown question types {unknown}; choose from {', '.join(ALL_FAMILIES)} or all"
        )
    return families


def is_clear(box_area: float, width: float, height: float, rules: Rules) -> bool:
    """Whether a box is big enough in a ``width`` x ``height`` picture not to be faint."""
    return box_area >= rules.min_area_fraction * width * height


def build_scene(dataset: CocoDataset, image: CocoImage, rules: Rules) -> Scene:
    """The picture's annotated instances as a :class:`Scene`."""
    things = []
    for note in dataset.by_image.get(image.id, []):
        area = note.area if note.area is not None and note.area > 0 else note.box_area
        things.append(
            Thing(
                name=dataset.category_name(note),
                box=note.box,
                area=area,
                box_area=note.box_area,
                clear=is_clear(note.box_area, image.width, image.height, rules),
                crowd=bool(note.iscrowd),
                group=dataset.categories[note.category_id].supercategory,
            )
        )
    names = sorted({category.name for category in dataset.categories.values()})
    return Scene(image.width, image.height, things, names, rules)


def pick(
    groups_by_family: dict[str, list[list[Question]]], limit: int, rng: random.Random
) -> list[Question]:
    """Up to ``limit`` questions, round-robin over the families, each family shuffled.

    No family takes more than half of an image's questions (else yes/no existence pairs, which
    every picture offers, would crowd out the rarer families).
    """
    share = max(1, limit // 2)
    taken: Counter[str] = Counter()
    queues = {}
    for family, groups in groups_by_family.items():
        shuffled = list(groups)
        rng.shuffle(shuffled)
        queues[family] = shuffled
    chosen: list[Question] = []
    texts: set[str] = set()
    while any(queues.values()):
        for family in list(queues):
            if not queues[family]:
                continue
            group = queues[family].pop(0)
            if (
                len(chosen) + len(group) > limit
                or taken[family] + len(group) > share
                or any(q.question in texts for q in group)
            ):
                continue
            taken[family] += len(group)
            chosen.extend(group)
            texts.update(q.question for q in group)
    return chosen


class Report(BaseModel):
    """What a generation run produced and what it left out, by reason."""

    images: int = 0
    images_used: int = 0
    questions: int = 0
    per_type: dict[str, int] = Field(default_factory=dict)
    answers: dict[str, dict[str, int]] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)


def check_image(path: Path, image: CocoImage) -> str | None:
    """None if the file is a readable picture of the annotated size, else the skip reason."""
    if not path.is_file():
        return "image missing"
    try:
        with Image.open(path) as opened:
            size = opened.size
    except (UnidentifiedImageError, OSError):
        return "image unreadable"
    if size != (image.width, image.height):
        return "image size differs from the annotations"
    return None


def find_images_dir(dataset: CocoDataset, images: Path | None) -> Path:
    """``images`` if given, else ``images/`` next to the annotation file, else its folder."""
    candidates = [images] if images else [dataset.path.parent / "images", dataset.path.parent]
    for folder in candidates:
        if any((folder / image.file_name).is_file() for image in dataset.images):
            return folder
    where = " or ".join(str(folder) for folder in candidates)
    raise QuestionError(
        f"none of the {len(dataset.images)} images of {dataset.path} is under {where}; "
        "pass --images DIR"
    )


def image_reference(path: Path, out: Path) -> str:
    """``path`` relative to the folder of ``out`` (absolute where no relative path exists)."""
    try:
        return Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.resolve().as_posix()


def generate(
    annotations: Path,
    out: Path,
    *,
    images: Path | None = None,
    seed: int = 0,
    per_image: int = 8,
    types: Iterable[str] = FAMILIES,
    rules: Rules | None = None,
) -> tuple[list[dict[str, object]], Report]:
    """Questions for every usable image of ``annotations``, as rows of ``vpagent eval`` JSONL."""
    families = resolve_types(types)
    if per_image < 1:
        raise QuestionError("--per-image must be at least 1")
    rules = rules or Rules()
    dataset = load_coco(annotations)
    folder = find_images_dir(dataset, images)
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    skipped: Counter[str] = Counter()
    used = 0
    for image in dataset.images:
        path = folder / image.file_name
        reason = check_image(path, image)
        if reason:
            skipped[reason] += 1
            continue
        scene = build_scene(dataset, image, rules)
        groups = {family: FAMILY_FUNCTIONS[family](scene, rng) for family in families}
        chosen = pick(groups, per_image, rng)
        if not chosen:
            skipped["no unambiguous question"] += 1
            continue
        used += 1
        rows.extend(question_rows(dataset, image, path, out, chosen))
    rows, dropped = balance(rows, rules.max_answer_share, rng)
    if dropped:
        skipped["answer too frequent for its type"] = dropped
    return rows, _report(len(dataset.images), used, rows, skipped)


def balance(
    rows: list[dict[str, object]], max_share: float, rng: random.Random
) -> tuple[list[dict[str, object]], int]:
    """Drop seeded-random rows of any answer above ``max_share`` of its type; keep the order."""
    drop: set[int] = set()
    for kind in sorted({str(row["type"]) for row in rows}):
        indices = [i for i, row in enumerate(rows) if row["type"] == kind]
        counts = Counter(str(rows[i]["answer"]) for i in indices)
        top, n_top = counts.most_common(1)[0]
        others = len(indices) - n_top
        allowed = n_top if max_share >= 1 else int(max_share / (1 - max_share) * others)
        if n_top > max(allowed, 1):
            tops = [i for i in indices if str(rows[i]["answer"]) == top]
            drop.update(rng.sample(tops, n_top - max(allowed, 1)))
    return [row for i, row in enumerate(rows) if i not in drop], len(drop)


def question_rows(
    dataset: CocoDataset,
    image: CocoImage,
    path: Path,
    out: Path,
    chosen: list[Question],
    *,
    prefix: str | None = None,
    extra: dict[str, object] | None = None,
) -> list[dict[str, object]]:
    """JSONL rows of ``chosen`` on the picture at ``path`` (of ``image``), relative to ``out``:
    ids ``<prefix>-NN`` (default: the file's stem), ``extra`` fields appended to each row."""
    licence = dataset.licenses.get(image.license) if image.license is not None else None
    prefix = prefix or Path(image.file_name).stem
    rows = []
    for number, question in enumerate(chosen, 1):
        row: dict[str, object] = {
            "id": f"{prefix}-{number:02d}",
            "image": image_reference(path, out),
            "question": question.question,
            "answer": question.answer,
            "type": question.type,
        }
        if question.accept:
            row["accept"] = question.accept
        if licence is not None:
            row["license"] = licence.name
            row["license_url"] = licence.url
        row["source"] = f"{dataset.description}, image {image.id}"
        rows.append(row | (extra or {}))
    return rows


def _report(images: int, used: int, rows: list[dict[str, object]], skipped: Counter[str]) -> Report:
    per_type = Counter(str(row["type"]) for row in rows)
    answers: dict[str, Counter[str]] = {}
    for row in rows:
        answers.setdefault(str(row["type"]), Counter())[str(row["answer"])] += 1
    return Report(
        images=images,
        images_used=used,
        questions=len(rows),
        per_type=dict(sorted(per_type.items())),
        answers={kind: dict(counts.most_common(5)) for kind, counts in sorted(answers.items())},
        skipped=dict(sorted(skipped.items())),
    )


def write_jsonl(rows: list[dict[str, object]], out: Path) -> None:
    """Write ``rows`` as JSON lines, atomically (a temporary file renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    temporary.replace(out)
