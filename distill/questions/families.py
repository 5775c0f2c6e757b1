"""The question families: one small function per family, each turning a
:class:`~vpagent.distill.questions.rules.Scene` into groups of questions.

The default six (:data:`FAMILIES`) are what ``vpagent distill questions`` asks unless told
otherwise; :data:`EXTRA_FAMILIES` add supercategory counts, two-category existence, count
comparisons, the biggest object and two-step relations.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from vpagent.distill.questions.rules import (
    AXES,
    GROUPS,
    RELATION,
    SIDES,
    UNCOUNTABLE,
    Question,
    QuestionError,
    Scene,
    Thing,
    accepted,
    beside,
    indefinite,
    plural,
    sole_name,
    there_is,
)

FAMILIES = ("count", "exist", "spatial", "size", "object", "compose")
EXTRA_FAMILIES = ("count_group", "exist_both", "compare_count", "largest", "two_hop")
ALL_FAMILIES = FAMILIES + EXTRA_FAMILIES


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
    groups: list[list[Question]] = []
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
                [Question(type="object", question=text, answer=name, accept=accepted(name))]
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
    groups: list[list[Question]] = []
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
    return [[Question(type="largest", question=text, answer=big.name, accept=accepted(big.name))]]


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
                    [Question(type="two_hop", question=text, answer=name, accept=accepted(name))]
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
