"""Parts of a person by geometry: where to look for hair, a hat, a shirt, trousers or shoes.

No pose or parsing model ships in any registry package, so the parts of a person box are fixed
fractions of it. A tall box (height >= FULL_BODY_ASPECT x width) is a whole standing person:
head, torso, legs and feet from top to bottom. A squat box is a person cut by the frame or
sitting, seen from the waist up: head and torso only. The fractions follow the usual human
proportions (the head is about an eighth of a standing body) with generous overlaps, because
boxes are loose. Properties that name a part ("gray-haired", "red shirt", "wearing sunglasses")
are checked on that part's crop; wearables the ImageNet classifier has a class for (sunglasses,
cowboy hat, jersey, trench coat, jean, running shoe, ...) are mapped to their part here, and
sunglasses are also checked on a face box where a face detector finds one.
"""

from __future__ import annotations

import numpy as np

from vpagent.tools.offline._image import crop
from vpagent.tools.types import Box

FULL_BODY_ASPECT = 1.6  # box height / width at and above which the whole body is in view
# part -> (top, bottom, left, right) as fractions of the person box
FULL_BODY: dict[str, tuple[float, float, float, float]] = {
    "hair": (0.0, 0.08, 0.25, 0.75),
    "head": (0.0, 0.2, 0.2, 0.8),
    "torso": (0.15, 0.55, 0.05, 0.95),
    "legs": (0.5, 0.92, 0.1, 0.9),
    "feet": (0.85, 1.0, 0.05, 0.95),
}
UPPER_BODY: dict[str, tuple[float, float, float, float]] = {
    "hair": (0.0, 0.12, 0.25, 0.75),
    "head": (0.0, 0.4, 0.2, 0.8),
    "torso": (0.35, 1.0, 0.0, 1.0),
}

# Words that name a part, or something worn on it.
PART_WORDS: dict[str, str] = {
    **dict.fromkeys(("hair", "haired", "blond", "blonde", "bald"), "hair"),
    **dict.fromkeys(
        ("head", "face", "hat", "cap", "helmet", "glasses", "sunglasses", "beard", "mask",
         "scarf", "hood", "headband", "bandana"),
        "head",
    ),
    **dict.fromkeys(
        ("shirt", "t-shirt", "tshirt", "jacket", "coat", "sweater", "jersey", "top", "vest",
         "suit", "tie", "blouse", "hoodie", "uniform", "dress", "apron", "sweatshirt", "cardigan",
         "tank"),
        "torso",
    ),
    **dict.fromkeys(
        ("pants", "trousers", "jeans", "shorts", "skirt", "leggings", "legs", "leg"), "legs"
    ),
    **dict.fromkeys(("shoes", "shoe", "boots", "boot", "sneakers", "sandals", "socks"), "feet"),
}  # fmt: skip

# ImageNet-1k indices of things worn, by the part they are worn on.
WEARABLE_PART: dict[int, str] = {
    **dict.fromkeys(
        (433, 452, 515, 518, 560, 570, 643, 667, 793, 796, 808, 836, 837, 903), "head"
    ),
    **dict.fromkeys(
        (399, 400, 411, 414, 445, 451, 457, 459, 465, 474, 501, 568, 578, 610, 614, 617, 638,
         639, 652, 679, 697, 735, 824, 834, 841, 869, 887, 906),
        "torso",
    ),
    **dict.fromkeys((529, 601, 608, 655, 689, 775, 842), "legs"),
    **dict.fromkeys((502, 514, 630, 770, 774, 806), "feet"),
}  # fmt: skip
# ... of which these are worn on the face itself (sunglass, sunglasses): a face box, where one is
# found, is a tighter crop for them than the head's fixed fraction, which holds hair, hat and
# background around a small face. (Masks are worn there too, but were not checked for false
# positives on bare faces, so they stay with the head crop.)
FACE_WORN = frozenset({836, 837})
FACE_TOP = 0.45  # a face for the person is centred in the upper part of the box, above this


def part_of(words: list[str]) -> str | None:
    """The body part the words name ('red shirt' -> torso, 'gray haired' -> hair), or None."""
    for word in words:
        if word in PART_WORDS:
            return PART_WORDS[word]
        if word.endswith("s") and word[:-1] in PART_WORDS:
            return PART_WORDS[word[:-1]]
    return None


def part_box(width: int, height: int, part: str) -> tuple[int, int, int, int] | None:
    """The pixel box (x0, y0, x1, y1) of ``part`` in a person crop of this size, or None when
    the crop does not show that part (legs and feet of a waist-up view)."""
    table = FULL_BODY if height >= FULL_BODY_ASPECT * width else UPPER_BODY
    if part not in table:
        return None
    top, bottom, left, right = table[part]
    x0, x1 = int(left * width), max(int(left * width) + 1, int(np.ceil(right * width)))
    y0, y1 = int(top * height), max(int(top * height) + 1, int(np.ceil(bottom * height)))
    return x0, y0, min(x1, width), min(y1, height)


def face_crop(person: np.ndarray, faces: list[Box]) -> np.ndarray | None:
    """The largest of ``faces`` (boxes in the person crop, clipped to it) centred above FACE_TOP
    of the crop's height, cut from it; None if there is no such face."""
    height, width = person.shape[:2]
    clipped = [box.clip(width, height) for box in faces]
    upper = [b for b in clipped if b.area >= 1 and (b.y0 + b.y1) / 2 < FACE_TOP * height]
    if not upper:
        return None
    return crop(person, max(upper, key=lambda box: box.area))


def part_crop(person: np.ndarray, part: str) -> np.ndarray | None:
    """The crop of ``part`` from an image of one person (its box crop), or None."""
    box = part_box(person.shape[1], person.shape[0], part)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    return person[y0:y1, x0:x1]
