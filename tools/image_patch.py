"""The image API that programs are written against. Its docstrings are the planner's API spec.

This module runs inside the sandbox worker. It imports nothing but the standard library and
holds no pixels: an ``ImagePatch`` is an image id and a box, and every vision operation is a
plain-data call to the host (see ``vpagent.tools.program_host``). Coordinates are pixels of
the whole image, x to the right and y downwards.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

HostCall = Callable[[str, dict[str, Any]], Any]


class ImagePatch:
    """A rectangular region of the image. The program's argument `image` is the whole image.

    Attributes: left, top, right, bottom (pixels, y grows downwards), width, height,
    horizontal_center, vertical_center, area; label and score when the patch came from find().
    """

    def __init__(
        self,
        call: HostCall,
        image_id: str,
        box: tuple[float, float, float, float],
        label: str = "",
        score: float = 1.0,
    ) -> None:
        self._call = call
        self._image_id = image_id
        self.left, self.top, self.right, self.bottom = (float(v) for v in box)
        self.width = self.right - self.left
        self.height = self.bottom - self.top
        self.horizontal_center = (self.left + self.right) / 2
        self.vertical_center = (self.top + self.bottom) / 2
        self.area = self.width * self.height
        self.label = label
        self.score = score

    def _request(self, tool: str, **args: Any) -> Any:
        return self._call(tool, {"image": self._image_id, "box": self._box(), **args})

    def _box(self) -> list[float]:
        return [self.left, self.top, self.right, self.bottom]

    def _child(self, result: dict[str, Any]) -> ImagePatch:
        return ImagePatch(
            self._call,
            self._image_id,
            tuple(result["box"]),
            str(result.get("label", "")),
            float(result.get("score", 1.0)),
        )

    def __repr__(self) -> str:
        name = f"{self.label!r} " if self.label else ""
        box = f"left={self.left:.0f}, top={self.top:.0f}, right={self.right:.0f}"
        return f"ImagePatch({name}{box}, bottom={self.bottom:.0f})"

    # Perception.

    def find(self, object_name: str) -> list[ImagePatch]:
        """Return patches of every `object_name` found inside this patch, best first. A colour
        or clothing in the name keeps only the matching ones ("black dog", "man in a red shirt").

        >>> dogs = image.find("dog")
        """
        return [self._child(hit) for hit in self._request("find", name=object_name)]

    def locate(self, object_name: str) -> ImagePatch:
        """The best `object_name` when the question presupposes it exists: searches harder than
        find (its score may be low). Use it rather than answering "no" when find() is empty.
        With a colour or clothing in the name, the best match: locate("man in the red shirt").

        >>> cup = image.locate("cup")
        """
        return self._child(self._request("find", name=object_name, thorough=True)[0])

    def exists(self, object_name: str) -> bool:
        """Return True if at least one `object_name` is in this patch.

        >>> image.exists("cat")
        """
        return len(self.find(object_name)) > 0

    def count(self, object_name: str) -> int:
        """Return how many `object_name` are in this patch.

        >>> image.count("person")
        """
        return len(self.find(object_name))

    def verify_property(self, object_name: str, property: str) -> bool:
        """Return True if the `object_name` in this patch has `property` (colour, material, state).

        >>> dog.verify_property("dog", "black")
        """
        return bool(self._request("verify_property", name=object_name, property=property))

    def best_text_match(self, options: list[str]) -> str:
        """Return the option that best describes this patch.

        >>> car.best_text_match(["red", "blue", "silver"])
        """
        if not options:
            raise ValueError("best_text_match needs at least one option")
        return str(self._request("best_text_match", options=[str(o) for o in options]))

    def simple_query(self, question: str) -> str:
        """Answer a simple, direct question about this patch ("What is the man holding?").

        >>> image.simple_query("What color is the bus?")
        """
        return str(self._request("simple_query", question=question))

    def caption(self) -> str:
        """Return a short description of this patch."""
        return str(self._request("caption"))

    def ocr(self) -> str:
        """Return the text written in this patch, lines joined by newlines ("" if none).

        >>> image.ocr()
        """
        return str(self._request("ocr"))

    def compute_depth(self) -> float:
        """Return the median depth of this patch; smaller means closer to the camera."""
        return float(self._request("compute_depth"))

    def marks(self) -> list[ImagePatch]:
        """Return the marks in this patch: circles, boxes and dots drawn on the image in a vivid
        colour, and marks given with the question. Each is the marked region with `label` its
        letter or number ("A", "1"; "" if none); a point mark is a small box around the point.

        >>> [m.label for m in image.marks()]
        """
        return [self._child(hit) for hit in self._request("marks")]

    def mark(self, label: str) -> ImagePatch:
        """Return the mark labelled `label` ("A", "1"): "What is at A?", "the point B".

        >>> a = image.mark("A")
        """
        wanted = str(label).strip().upper()
        for hit in self._request("marks"):
            if str(hit.get("label", "")).upper() == wanted:
                return self._child(hit)
        raise ValueError(f"no mark labelled {label!r} on the image")

    def object_at(self) -> ImagePatch:
        """Return the detected object under this patch's centre (a mark's point), labelled
        with its name; the one in front where objects overlap.

        >>> image.mark("A").object_at().label
        """
        return self._child(self._request("object_at"))

    def point_depth(self) -> float:
        """Depth at this patch's centre, for marked points; smaller means closer. A point on
        an object counts as where that object stands (an occluder is closer).

        >>> image.mark("A").point_depth() < image.mark("B").point_depth()
        """
        return float(self._request("point_depth"))

    def segment(self) -> float:
        """Segment the main object of this patch; return the fraction of the patch it covers."""
        return float(self._request("segment"))

    # Geometry (computed locally, no model involved).

    def crop(self, left: float, top: float, right: float, bottom: float) -> ImagePatch:
        """Return the sub-patch with the given box, in whole-image pixel coordinates."""
        left, right = max(self.left, min(left, right)), min(self.right, max(left, right))
        top, bottom = max(self.top, min(top, bottom)), min(self.bottom, max(top, bottom))
        if right <= left or bottom <= top:
            raise ValueError("crop box does not overlap this patch")
        return ImagePatch(self._call, self._image_id, (left, top, right, bottom))

    def left_of(self, other: ImagePatch) -> bool:
        """True if this patch's centre is left of `other`'s centre."""
        return self.horizontal_center < other.horizontal_center

    def right_of(self, other: ImagePatch) -> bool:
        """True if this patch's centre is right of `other`'s centre."""
        return self.horizontal_center > other.horizontal_center

    def above(self, other: ImagePatch) -> bool:
        """True if this patch's centre is above `other`'s centre."""
        return self.vertical_center < other.vertical_center

    def below(self, other: ImagePatch) -> bool:
        """True if this patch's centre is below `other`'s centre."""
        return self.vertical_center > other.vertical_center

    def overlaps(self, other: ImagePatch) -> bool:
        """True if the two boxes share any area."""
        return _intersection(self, other) > 0

    def inside(self, other: ImagePatch) -> bool:
        """True if most (over 80%) of this patch lies within `other`."""
        return self.area > 0 and _intersection(self, other) / self.area > 0.8

    def distance(self, other: ImagePatch) -> float:
        """Pixel distance between the two centres."""
        dx = self.horizontal_center - other.horizontal_center
        dy = self.vertical_center - other.vertical_center
        return (dx * dx + dy * dy) ** 0.5

    # Relations (geometry; in_front_of/behind also use compute_depth).

    def next_to(self, other: ImagePatch) -> bool:
        """True if side by side: rows overlap, gap under half the smaller's size. Alias: beside."""
        return (
            _overlap(self.top, self.bottom, other.top, other.bottom) > 0
            and _gap(self, other) < NEAR * _size(self, other)
            and not self.inside(other)
            and not other.inside(self)
        )

    def touching(self, other: ImagePatch) -> bool:
        """True if the boxes overlap or nearly meet."""
        return _gap(self, other) <= TOUCH * _size(self, other)

    def on(self, other: ImagePatch) -> bool:
        """True if this rests on `other` (bottom in its upper half). Alias: on_top_of."""
        over = _overlap(self.left, self.right, other.left, other.right) / max(self.width, 1e-6)
        lowest = other.top + ON_DEPTH * other.height
        return (
            over >= ON_OVERLAP
            and other.top - TOUCH * other.height <= self.bottom <= lowest
            and self.vertical_center < other.vertical_center
        )

    def under(self, other: ImagePatch) -> bool:
        """True if this is beneath `other` (lower, within its columns). Alias: beneath."""
        over = _overlap(self.left, self.right, other.left, other.right)
        return (
            over >= ON_OVERLAP * min(self.width, other.width)
            and self.vertical_center > other.vertical_center
            and self.top >= other.top + UNDER_TOP * other.height
        )

    def in_front_of(self, other: ImagePatch) -> bool:
        """True if closer to the camera than `other` (depth of the lower parts)."""
        return _near_depth(self) < _near_depth(other)

    def behind(self, other: ImagePatch) -> bool:
        """True if farther from the camera than `other`."""
        return _near_depth(self) > _near_depth(other)

    def contains(self, other: ImagePatch) -> bool:
        """True if `other` lies mostly within this patch."""
        return other.inside(self)

    beside = next_to
    on_top_of = on
    beneath = under


NEAR = 0.5  # next_to: largest gap, as a fraction of the smaller object's size
TOUCH = 0.05  # touching: largest gap, same unit
ON_OVERLAP = 0.5  # on/under: share of the narrower width that must be shared
ON_DEPTH = 0.5  # on: the upper object's bottom lies within this top fraction of the lower one
UNDER_TOP = 0.3  # under: the lower object's top is at least this far down the upper one
NEAR_PART = 0.2  # in_front_of/behind: depth of the lowest fifth of a box (where it meets
# the ground on a level scene; the nearest part for a depth model)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _gap(a: ImagePatch, b: ImagePatch) -> float:
    """Distance between the boxes' nearest edges (0 when they overlap)."""
    dx = max(0.0, max(a.left, b.left) - min(a.right, b.right))
    dy = max(0.0, max(a.top, b.top) - min(a.bottom, b.bottom))
    return (dx * dx + dy * dy) ** 0.5


def _size(a: ImagePatch, b: ImagePatch) -> float:
    """The smaller object's size: the larger side of the smaller box (by area)."""
    small = a if a.area <= b.area else b
    return max(small.width, small.height)


def _near_depth(patch: ImagePatch) -> float:
    top = patch.bottom - max(NEAR_PART * patch.height, 2.0)
    return patch.crop(patch.left, top, patch.right, patch.bottom).compute_depth()


def _intersection(a: ImagePatch, b: ImagePatch) -> float:
    width = min(a.right, b.right) - max(a.left, b.left)
    height = min(a.bottom, b.bottom) - max(a.top, b.top)
    return max(width, 0.0) * max(height, 0.0)


def build_program_api(call: HostCall, image: dict[str, Any]) -> tuple[ImagePatch, dict[str, Any]]:
    """Worker factory: the root patch and the free functions a program may call."""
    root = ImagePatch(call, str(image["id"]), (0, 0, image["width"], image["height"]))

    def llm_query(question: str) -> str:
        """Ask a language model a world-knowledge question; returns a short answer.

        >>> llm_query("What do dogs usually carry in their mouth when playing fetch?")
        """
        return str(call("llm_query", {"question": str(question)}))

    return root, {"llm_query": llm_query}


def _spec_of(function: Callable[..., Any], indent: str) -> str:
    signature = str(inspect.signature(function)).replace("'", "")
    lines = inspect.getdoc(function).splitlines()
    head = f"{indent}def {function.__name__}{signature}:\n"
    if len(lines) == 1:  # one-line docstrings stay on one line: the prompt is a latency cost
        return f'{head}{indent}    """{lines[0]}"""\n'
    doc = "\n".join(f"{indent}    {line}".rstrip() for line in lines)
    return f'{head}{indent}    """\n{doc}\n{indent}    """\n'


def api_spec() -> str:
    """The API as the planner sees it: public signatures and docstrings, no bodies."""
    class_doc = "\n".join(
        f"    {line}".rstrip() for line in inspect.getdoc(ImagePatch).splitlines()
    )
    parts = [f'class ImagePatch:\n    """\n{class_doc}\n    """\n']
    for name, member in vars(ImagePatch).items():  # aliases (beside = next_to) are skipped
        if not name.startswith("_") and callable(member) and member.__name__ == name:
            parts.append(_spec_of(member, "    "))
    _, functions = build_program_api(lambda tool, args: None, {"id": "", "width": 1, "height": 1})
    parts.extend(_spec_of(function, "") for function in functions.values())
    return "\n".join(parts)
