"""The rules of the COCO questions: what in a picture is countable, unique, related or
bigger, and how categories are worded.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from vpagent.distill.coco import CocoDataset, CocoImage

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


def accepted(name: str) -> list[str]:
    """The other answers accepted for a category name (its synonyms)."""
    return list(SYNONYMS.get(name, []))


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
