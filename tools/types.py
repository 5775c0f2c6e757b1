"""Typed values the vision specialists return. Boxes are xyxy pixels, y downwards."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field


class Box(BaseModel):
    """An axis-aligned box in pixels: (x0, y0) top-left, (x1, y1) bottom-right."""

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, values: Any) -> Box:
        x0, y0, x1, y1 = (float(v) for v in values)
        return cls(x0=x0, y0=y0, x1=x1, y1=y1)

    def as_list(self) -> list[float]:
        return [self.x0, self.y0, self.x1, self.y1]

    @property
    def area(self) -> float:
        return max(self.x1 - self.x0, 0.0) * max(self.y1 - self.y0, 0.0)

    def clip(self, width: int, height: int) -> Box:
        return Box(
            x0=min(max(self.x0, 0.0), width),
            y0=min(max(self.y0, 0.0), height),
            x1=min(max(self.x1, 0.0), width),
            y1=min(max(self.y1, 0.0), height),
        )

    def shift(self, dx: float, dy: float) -> Box:
        return Box(x0=self.x0 + dx, y0=self.y0 + dy, x1=self.x1 + dx, y1=self.y1 + dy)


class Detection(BaseModel):
    """One detected object: its box, confidence and the query name it answers."""

    box: Box
    score: float = Field(ge=0.0, le=1.0)
    label: str


class PropertyEvidence(BaseModel):
    """How strongly an object shows a property: a score comparable across objects of one
    name and property (to rank them), and the matcher's yes/no verdict."""

    score: float
    holds: bool


class Mark(BaseModel):
    """A mark on the image: drawn on it (found by the marks finder) or given with the question.

    ``point`` is where the mark points (a circle's or box's centre, a dot); ``box`` the region
    it marks (a point's is a small square around it). ``label`` is its letter or number ("" if
    none was read)."""

    label: str = ""
    kind: Literal["point", "circle", "box"]
    point: tuple[float, float]
    box: Box
    color: str | None = None
    source: Literal["drawn", "given"] = "drawn"

    @classmethod
    def given(cls, label: str, point: Any = None, box: Any = None) -> Mark:
        """A mark given as data: ``{"label": "A", "point": [x, y]}`` or ``{"box": [x0, y0, x1,
        y1]}`` (exactly one of the two)."""
        if (point is None) == (box is None):
            raise ValueError("a mark has exactly one of 'point' [x, y] or 'box' [x0, y0, x1, y1]")
        if box is not None:
            region = Box.of(box)
            if region.x1 <= region.x0 or region.y1 <= region.y0:
                raise ValueError(f"mark box {list(box)} is empty: x1 > x0 and y1 > y0 needed")
            centre = ((region.x0 + region.x1) / 2, (region.y0 + region.y1) / 2)
            return cls(label=str(label), kind="box", point=centre, box=region, source="given")
        x, y = (float(v) for v in point)
        square = Box.of([x - POINT_RADIUS, y - POINT_RADIUS, x + POINT_RADIUS, y + POINT_RADIUS])
        return cls(label=str(label), kind="point", point=(x, y), box=square, source="given")


POINT_RADIUS = 6.0  # a point mark's box: this many pixels around the point


class GivenMark(BaseModel):
    """A mark as a request gives it: a label and a point [x, y] or a box [x0, y0, x1, y1]."""

    model_config = {"extra": "forbid"}

    label: str = Field("", max_length=16, description='Its letter or number ("A", "1").')
    point: tuple[float, float] | None = Field(None, description="[x, y] in pixels.")
    box: tuple[float, float, float, float] | None = Field(
        None, description="[x0, y0, x1, y1] in pixels."
    )

    def mark(self) -> Mark:
        """The checked Mark (ValueError: neither or both of point and box, an empty box)."""
        return Mark.given(self.label, self.point, self.box)


class TextLine(BaseModel):
    """One line of text read by OCR."""

    text: str
    box: Box
    confidence: float = Field(ge=0.0, le=1.0)


class RLE(BaseModel):
    """Row-major run-length encoding of a boolean mask, starting with a run of False."""

    height: int
    width: int
    counts: list[int]


@dataclass
class Mask:
    """A boolean mask the size of the image it was computed on."""

    pixels: np.ndarray  # bool, H x W
    score: float = 1.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def area(self) -> int:
        return int(self.pixels.sum())

    def box(self) -> Box | None:
        ys, xs = np.nonzero(self.pixels)
        if len(xs) == 0:
            return None
        return Box(
            x0=float(xs.min()), y0=float(ys.min()), x1=float(xs.max() + 1), y1=float(ys.max() + 1)
        )

    def to_rle(self) -> RLE:
        flat = np.asarray(self.pixels, dtype=bool).ravel()
        changes = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
        boundaries = np.concatenate(([0], changes, [flat.size]))
        counts = np.diff(boundaries).tolist()
        if flat.size and flat[0]:
            counts = [0, *counts]
        height, width = self.pixels.shape
        return RLE(height=height, width=width, counts=[int(c) for c in counts])

    @classmethod
    def from_rle(cls, rle: RLE, score: float = 1.0) -> Mask:
        values = np.zeros(len(rle.counts), dtype=bool)
        values[1::2] = True
        flat = np.repeat(values, rle.counts)
        return cls(pixels=flat.reshape(rle.height, rle.width), score=score)


class ToolInfo(BaseModel):
    """What `vpagent doctor` shows for one role."""

    role: str
    backend: str
    model: str
    weights: str | None = None
    device: str = "cpu"
    stand_in: bool = False
    note: str = ""


class StepArtifacts(BaseModel):
    """What one tool call leaves for the trace: the region it looked at, the boxes it found, a
    mask, a referring-expression ranking, and why its result is only a guess."""

    region: list[float] | None = None
    boxes: list[dict[str, Any]] = Field(default_factory=list)  # {"box", "score"?, "label"}
    mask: RLE | None = None
    attribute: dict[str, Any] | None = None  # how "black dog" ranked the dogs
    unverified: str | None = None  # set: the result is a low-confidence guess, and why

    @property
    def drawable(self) -> bool:
        """Something to draw on the image."""
        return self.region is not None or bool(self.boxes) or self.mask is not None
