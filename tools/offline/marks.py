"""Marks drawn on a photo: circles, boxes and dots in a vivid colour, with a letter or number.

People and benchmarks mark places on a picture ("two points are circled and labelled A and B")
with strokes of one saturated colour. :class:`MarkFinder` finds them with OpenCV alone:

1. colour: pixels of high saturation and brightness, split by hue into six bands (red, yellow,
   green, cyan, blue, magenta); each band's connected components are the candidate strokes;
2. shape: a *circle* is a thin ring (round outer contour, mostly hollow), a *box* a thin
   rectangular frame, a *point* a small solid disc; everything else of the same colour that is
   glyph-sized is a candidate label;
3. label: the glyphs nearest each shape (same colour, beside or inside it; for a solid dot also
   the light glyph inside it) are cut out, drawn black on white and read by the shipped
   PP-OCRv4 recogniser (rapidocr, recognition only). One or two letters or digits are a label.

What it cannot do: marks in white, black or grey, or in a colour the photo itself is full of
(they are not separated from the scene); arrows and free-hand lines (not returned); labels in
another colour than their mark, except light text inside a solid dot; handwriting the
recogniser misreads. A circle or box without a readable label is returned with label "".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline._image import as_rgb
from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.types import Box, Mark

HUES = {  # OpenCV hue (0-179) ranges per colour name
    "red": ((0, 8), (172, 179)),
    "yellow": ((20, 34),),
    "green": ((40, 85),),
    "cyan": ((86, 99),),
    "blue": ((100, 130),),
    "magenta": ((140, 171),),
}
MIN_SATURATION = 150
MIN_VALUE = 130
MIN_PIXELS = 20  # components smaller than this are noise
RING_HOLLOW = 0.45  # a ring's stroke covers at most 1 - this of its outer contour's area
RING_ROUND = 0.75  # a circle's outer contour: 4 pi area / perimeter^2 at least this
RING_ASPECT = (0.6, 1.67)  # a circle's width / height
BOX_FILL = 0.88  # a box's outer contour fills at least this much of its bounding box
MAX_STROKE = 0.25  # a ring's or frame's stroke is at most this share of its smaller side
MIN_SHAPE_SIDE = 10  # circles and boxes at least this many pixels across
DOT_SIDE = (6, 80)  # a solid dot's diameter in pixels
DOT_FILL = (0.65, 0.92)  # a disc fills pi/4 of its bounding box
DOT_SOLID = 0.6  # a dot's pixels cover at least this share of its outer contour
GLYPH_HEIGHT = (7, 120)  # label glyphs' height in pixels
LABEL_REACH = 1.5  # a label lies within this many shape sizes of the shape's box
LABEL_CONFIDENCE = 0.6  # recogniser confidence a label needs
MAX_LABEL = 2  # labels are one or two letters or digits
GLYPH_PAD = 0.35  # white margin around a glyph before recognition, as a share of its height


@dataclass
class _Component:
    color: str
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    pixels: int
    mask: np.ndarray  # the component's pixels within box

    @property
    def width(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def centre(self) -> tuple[float, float]:
        return ((self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2)


class MarkFinder:
    """Drawn marks by colour and shape (OpenCV), labels read by the shipped OCR recogniser."""

    backend = "opencv-shapes+rapidocr-rec"

    def __init__(self) -> None:
        self._recogniser: Lazy[Any] = Lazy(self._load)
        self._lock = threading.Lock()

    def _load(self) -> Any:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as error:
            raise ModelUnavailable(
                "rapidocr-onnxruntime is not installed; reading mark labels needs it "
                f"({weights.OFFLINE_EXTRA})"
            ) from error
        paths = weights.packaged_files("ocr.")
        return RapidOCR(
            det_model_path=str(paths["ocr.det"]),
            rec_model_path=str(paths["ocr.rec"]),
            cls_model_path=str(paths["ocr.cls"]),
            intra_op_num_threads=1,
            inter_op_num_threads=1,
        )

    def find(self, image: Any) -> list[Mark]:
        """Every mark drawn on ``image``, left to right."""
        rgb = as_rgb(image)
        marks: list[Mark] = []
        for color, components in _components(rgb).items():
            shapes: list[tuple[str, _Component]] = []
            free = []
            for comp in components:
                kind = _shape(comp)
                if kind is not None:
                    shapes.append((kind, comp))
                    continue
                framed = _framed(comp)  # a ring or frame touched by something of its colour
                shapes.extend(framed)
                if not framed and _glyph_sized(comp):
                    free.append(comp)
            for kind, comp in shapes:
                label = self._label(rgb, kind, comp, free)
                if kind == "point" and not label:
                    continue  # an unlabelled vivid dot is as likely a lamp or a ball
                marks.append(_mark(kind, comp, label, color))
        return sorted(marks, key=lambda m: (m.point[0], m.point[1]))

    def _label(self, rgb: np.ndarray, kind: str, shape: _Component, free: list[_Component]) -> str:
        """The label nearest ``shape`` (its glyphs leave ``free``), or ""."""
        if kind == "point":
            inside = _inner_glyph(rgb, shape)
            if inside is not None:
                text = self.read(inside)
                if text:
                    return text
        near = _nearest_group(shape, free)
        if not near or (kind == "point" and _gap(shape.box, near[0].box) == 0):
            return ""  # a dot's label is beside it: a vivid bit inside its box is the scene
        text = self.read(_render(near))
        if text:
            for glyph in near:
                free.remove(glyph)
        return text

    def read(self, glyph: np.ndarray) -> str:
        """One or two letters or digits read from a black-on-white glyph image, or ""."""
        engine = self._recogniser.get()
        with self._lock:
            result, _ = engine(glyph, use_det=False, use_cls=False, use_rec=True)
        if not result:
            return ""
        text, confidence = str(result[0][0]).strip(), float(result[0][1])
        if confidence < LABEL_CONFIDENCE or not 0 < len(text) <= MAX_LABEL or not text.isalnum():
            return ""
        return text.upper()


def _components(rgb: np.ndarray) -> dict[str, list[_Component]]:
    """Connected components of each vivid colour band."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    vivid = (hsv[:, :, 1] >= MIN_SATURATION) & (hsv[:, :, 2] >= MIN_VALUE)
    found: dict[str, list[_Component]] = {}
    for color, ranges in HUES.items():
        band = np.zeros(vivid.shape, dtype=bool)
        for low, high in ranges:
            band |= (hsv[:, :, 0] >= low) & (hsv[:, :, 0] <= high)
        mask = (vivid & band).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        comps = []
        for index in range(1, count):
            x, y, w, h, n = (int(v) for v in stats[index])
            if n < MIN_PIXELS:
                continue
            comps.append(
                _Component(color, (x, y, x + w, y + h), n, labels[y : y + h, x : x + w] == index)
            )
        found[color] = comps
    return found


def _outer(comp: _Component) -> tuple[float, float]:
    """Area and perimeter of the component's outer contour."""
    padded = np.pad(comp.mask.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    contour = max(contours, key=cv2.contourArea)
    return float(cv2.contourArea(contour)), float(cv2.arcLength(contour, True))


def _shape(comp: _Component) -> str | None:
    """'circle', 'box', 'point' or None (a glyph, an arrow or part of the scene)."""
    side = min(comp.width, comp.height)
    if side < min(MIN_SHAPE_SIDE, DOT_SIDE[0]):
        return None
    area, perimeter = _outer(comp)
    if area <= 0 or perimeter <= 0:
        return None
    solid = comp.pixels / area
    aspect = comp.width / comp.height
    roundness = 4 * np.pi * area / perimeter**2
    fill = area / (comp.width * comp.height)
    stroke = comp.pixels / perimeter  # mean thickness of a thin ring or frame
    hollow = solid <= 1 - RING_HOLLOW and stroke <= MAX_STROKE * side
    if hollow and side >= MIN_SHAPE_SIDE:
        if fill >= BOX_FILL and _rectangular(comp):
            return "box"
        if RING_ASPECT[0] <= aspect <= RING_ASPECT[1] and roundness >= RING_ROUND:
            return "circle"
        return None
    if (
        DOT_SIDE[0] <= side
        and max(comp.width, comp.height) <= DOT_SIDE[1]
        and 0.8 <= aspect <= 1.25
        and DOT_FILL[0] <= fill <= DOT_FILL[1]
        and solid >= DOT_SOLID
        and roundness >= RING_ROUND
    ):
        return "point"
    return None


def _framed(comp: _Component) -> list[tuple[str, _Component]]:
    """Circles and boxes seen by their inside: a round or rectangular hole of the component
    ringed by a thin stroke with no colour beyond it on most sides. Finds a mark that touches
    scene pixels of its own colour (which spoil the component's outer shape)."""
    if min(comp.width, comp.height) < MIN_SHAPE_SIDE or comp.pixels < 4 * MIN_PIXELS:
        return []
    mask = np.pad(comp.mask.astype(np.uint8), 1)
    contours, hierarchy = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    found = []
    for contour, link in zip(contours, hierarchy[0], strict=True):
        x, y, w, h = cv2.boundingRect(contour)
        if link[3] < 0 or min(w, h) < MIN_SHAPE_SIDE:
            continue  # an outer contour, or a small hole
        area, perimeter = cv2.contourArea(contour), cv2.arcLength(contour, True)
        if area <= 0 or perimeter <= 0:
            continue
        hole = np.zeros_like(mask)
        cv2.drawContours(hole, [contour], -1, 1, thickness=-1)
        stroke = _stroke(mask, hole, max(3, int(MAX_STROKE * min(w, h))))
        if stroke is None:
            continue
        if area / (w * h) >= BOX_FILL and _four_corners(contour):
            kind = "box"
        elif RING_ASPECT[0] <= w / h <= RING_ASPECT[1] and 4 * np.pi * area / perimeter**2 >= 0.8:
            kind = "circle"
        else:
            continue
        x0, y0 = comp.box[0] + x - 1 - stroke, comp.box[1] + y - 1 - stroke
        box = (x0, y0, x0 + w + 2 * stroke, y0 + h + 2 * stroke)
        shape = _Component(comp.color, box, 0, np.zeros((box[3] - box[1], box[2] - box[0]), bool))
        found.append((kind, shape))
    return found


def _stroke(mask: np.ndarray, hole: np.ndarray, widest: int) -> int | None:
    """The thickness of the stroke around ``hole`` if it rings it fully and, beyond at most
    ``widest`` pixels, most of the surroundings are free of the colour; else None."""
    inside = hole.astype(bool)
    previous = inside
    for thickness in range(1, widest + 2):
        grown = cv2.dilate(hole, np.ones((2 * thickness + 1,) * 2, np.uint8)).astype(bool)
        band = grown & ~previous
        previous = grown
        if not band.any():
            return None
        covered = mask[band].mean()
        if thickness <= 2 and covered < 0.9:
            return None  # not ringed all round
        if covered < 0.6:
            beyond = cv2.dilate(hole, np.ones((2 * thickness + 7,) * 2, np.uint8)).astype(bool)
            free = 1 - mask[beyond & ~grown].mean()
            return thickness - 1 if free >= 0.5 else None
    return None


def _four_corners(contour: np.ndarray) -> bool:
    corners = cv2.approxPolyDP(contour, 0.04 * cv2.arcLength(contour, True), True)
    return len(corners) == 4


def _rectangular(comp: _Component) -> bool:
    """The outer contour simplifies to four corners."""
    padded = np.pad(comp.mask.astype(np.uint8), 1)
    contours, _ = cv2.findContours(padded, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contour = max(contours, key=cv2.contourArea)
    corners = cv2.approxPolyDP(contour, 0.04 * cv2.arcLength(contour, True), True)
    return len(corners) == 4


def _glyph_sized(comp: _Component) -> bool:
    return (
        GLYPH_HEIGHT[0] <= comp.height <= GLYPH_HEIGHT[1]
        and comp.width <= 1.5 * comp.height
        and comp.pixels >= MIN_PIXELS
    )


def _gap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    dx = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dy = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float((dx * dx + dy * dy) ** 0.5)


def _nearest_group(shape: _Component, glyphs: list[_Component]) -> list[_Component]:
    """The glyph nearest the shape within LABEL_REACH of its size, and the glyphs on its line
    right beside it ("10", "A1")."""
    reach = LABEL_REACH * max(shape.width, shape.height)
    near = [g for g in glyphs if _gap(shape.box, g.box) <= reach]
    if not near:
        return []
    first = min(near, key=lambda g: _gap(shape.box, g.box))
    group = [first]
    for glyph in sorted(glyphs, key=lambda g: g.box[0]):
        if glyph in group:
            continue
        last = group[-1]
        same_line = abs(glyph.centre[1] - last.centre[1]) <= 0.3 * last.height
        beside = 0 <= glyph.box[0] - last.box[2] <= 0.6 * last.height
        if same_line and beside and len(group) < MAX_LABEL:
            group.append(glyph)
    return group


def _render(glyphs: list[_Component]) -> np.ndarray:
    """The glyphs' pixels, black on white with a margin, as a BGR image for the recogniser."""
    x0 = min(g.box[0] for g in glyphs)
    y0 = min(g.box[1] for g in glyphs)
    x1 = max(g.box[2] for g in glyphs)
    y1 = max(g.box[3] for g in glyphs)
    canvas = np.zeros((y1 - y0, x1 - x0), dtype=bool)
    for g in glyphs:
        canvas[g.box[1] - y0 : g.box[3] - y0, g.box[0] - x0 : g.box[2] - x0] |= g.mask
    return _on_white(canvas)


def _on_white(ink: np.ndarray) -> np.ndarray:
    pad = max(4, int(GLYPH_PAD * ink.shape[0]))
    gray = np.where(ink, 0, 255).astype(np.uint8)
    gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _inner_glyph(rgb: np.ndarray, dot: _Component) -> np.ndarray | None:
    """Light pixels inside a solid dot (a letter written in it), rendered for the recogniser."""
    filled = np.pad(dot.mask.astype(np.uint8), 1)
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    inside = np.zeros_like(filled)
    cv2.drawContours(inside, contours, -1, 1, thickness=-1)
    holes = (inside[1:-1, 1:-1] > 0) & ~dot.mask
    if holes.sum() < MIN_PIXELS:
        return None
    ys, xs = np.nonzero(holes)
    crop = holes[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    if crop.shape[0] < GLYPH_HEIGHT[0] // 2:
        return None
    return _on_white(crop)


def _mark(kind: str, comp: _Component, label: str, color: str) -> Mark:
    x0, y0, x1, y1 = comp.box
    return Mark(
        label=label,
        kind=kind,  # type: ignore[arg-type]
        point=comp.centre,
        box=Box.of([x0, y0, x1, y1]),
        color=color,
    )


_SHARED: Lazy[MarkFinder] = Lazy(MarkFinder)


def shared_mark_finder() -> MarkFinder:
    """One finder per process (its recogniser loads once)."""
    return _SHARED.get()
