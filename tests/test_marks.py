"""Marks on a photo: drawn ones found by the marks finder, given ones passed as data, the object
under a mark, and depth between marked points with the ground-plane stand-in."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from vpagent.agent import given_marks, with_marks
from vpagent.apps.marks_input import add_click, parse_marks
from vpagent.images import load_image
from vpagent.tools.offline.depth import front_object, ground_contact
from vpagent.tools.types import Box, Detection, GivenMark, Mark

cv2 = pytest.importorskip("cv2")

COLORS = {"red": (255, 0, 0), "green": (0, 200, 0), "blue": (0, 0, 255), "magenta": (255, 0, 255)}
PHOTOS = 12  # the first coco128 photos, by name


@pytest.fixture(scope="module")
def coco_photos(data_dir: Path) -> list[np.ndarray]:
    folder = data_dir / "coco128" / "images"
    if not folder.is_dir():
        pytest.skip("no coco128 photos")
    return [load_image(path) for path in sorted(folder.glob("*.jpg"))[:PHOTOS]]


@pytest.fixture(scope="module")
def finder():  # type: ignore[no-untyped-def]
    pytest.importorskip("rapidocr_onnxruntime")
    from vpagent.tools.offline.marks import MarkFinder

    return MarkFinder()


def draw(photo: np.ndarray, seed: int) -> tuple[np.ndarray, list[tuple[str, str, int, int]]]:
    """A copy of ``photo`` with a labelled circle, a labelled box and a dot with a letter in it,
    each in its own third of the picture, in seeded colours and places."""
    rng = random.Random(seed)
    image = photo.copy()
    height, width = image.shape[:2]
    drawn = []
    for third, (label, kind) in enumerate((("A", "circle"), ("B", "box"), ("3", "point"))):
        color = COLORS[rng.choice(sorted(COLORS))]
        x = rng.randint(third * width // 3 + 40, (third + 1) * width // 3 - 70)
        y = rng.randint(60, height - 60)
        font = cv2.FONT_HERSHEY_SIMPLEX
        if kind == "circle":
            cv2.circle(image, (x, y), 20, color, 3, cv2.LINE_AA)
            cv2.putText(image, label, (x + 25, y - 12), font, 1.0, color, 3, cv2.LINE_AA)
        elif kind == "box":
            cv2.rectangle(image, (x - 25, y - 20), (x + 25, y + 20), color, 3)
            cv2.putText(image, label, (x + 30, y + 12), font, 1.0, color, 3, cv2.LINE_AA)
        else:
            cv2.circle(image, (x, y), 16, color, -1, cv2.LINE_AA)
            cv2.putText(image, label, (x - 9, y + 9), font, 0.7, (255, 255, 255), 2, cv2.LINE_AA)
        drawn.append((label, kind, x, y))
    return image, drawn


@pytest.mark.slow
def test_marks_drawn_on_photos_are_found_with_their_labels_at_their_places(
    finder, coco_photos: list[np.ndarray]
) -> None:
    found, missed = 0, []
    for index, photo in enumerate(coco_photos):
        image, drawn = draw(photo, index)
        marks = {(m.label, m.kind): m for m in finder.find(image)}
        for label, kind, x, y in drawn:
            mark = marks.get((label, kind))
            if mark and abs(mark.point[0] - x) <= 3 and abs(mark.point[1] - y) <= 3:
                found += 1
            else:
                missed.append((index, label, kind))
    assert found >= 0.95 * 3 * len(coco_photos), missed


@pytest.mark.slow
def test_unmarked_photos_have_no_marks(finder, coco_photos: list[np.ndarray]) -> None:
    assert [finder.find(photo) for photo in coco_photos] == [[] for _ in coco_photos]


def test_a_mark_on_a_plain_background_is_read_exactly(finder) -> None:  # type: ignore[no-untyped-def]
    image = np.full((240, 320, 3), 235, dtype=np.uint8)
    cv2.rectangle(image, (40, 60), (120, 150), (255, 0, 0), 3)
    cv2.putText(image, "7", (126, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 0, 0), 3)
    (mark,) = finder.find(image)
    assert (mark.kind, mark.label, mark.color) == ("box", "7", "red")
    assert mark.box.as_list() == pytest.approx([39, 59, 122, 152], abs=2)


def test_given_marks_are_checked() -> None:
    a, one = given_marks([{"label": "A", "point": [10, 20]}, {"label": "1", "box": [0, 0, 5, 4]}])
    assert (a.kind, a.point, a.source) == ("point", (10.0, 20.0), "given")
    assert (one.kind, one.point, one.box.as_list()) == ("box", (2.5, 2.0), [0.0, 0.0, 5.0, 4.0])
    for bad in ({"label": "A"}, {"point": [1, 2], "box": [0, 0, 1, 1]}, {"box": [5, 5, 1, 1]}):
        with pytest.raises(ValueError, match="mark 0"):
            given_marks([bad])
    with pytest.raises(ValueError, match="unknown keys"):
        given_marks([{"label": "A", "point": [1, 2], "colour": "red"}])
    assert GivenMark(label="B", point=(3, 4)).mark().point == (3.0, 4.0)
    assert with_marks("What is at A?", [a]) == (
        "What is at A? Marks on the image: A (point at 10, 20)."
    )
    assert with_marks("What is at A?", []) == "What is at A?"


def _det(label: str, box: list[float]) -> Detection:
    return Detection(box=Box.of(box), score=0.9, label=label)


def test_a_point_on_an_object_is_read_at_its_ground_contact() -> None:
    near_person = _det("person", [100, 50, 200, 400])  # tall and near: head high in the picture
    far_car = _det("car", [300, 200, 400, 260])
    on_head, on_car = (150, 60), (350, 230)
    (x, y), found = ground_contact(on_head, [near_person, far_car])
    assert found is near_person and (x, y) == (150, 399)
    assert ground_contact(on_car, [near_person, far_car])[0][1] == 259
    assert ground_contact((10, 10), [near_person, far_car]) == ((10, 10), None)


def test_where_boxes_overlap_the_occluder_is_under_the_point() -> None:
    sofa_behind = _det("couch", [50, 100, 300, 250])
    dog_in_front = _det("dog", [120, 150, 220, 290])
    assert front_object((160, 200), [sofa_behind, dog_in_front]) is dog_in_front
    assert front_object((60, 120), [sofa_behind, dog_in_front]) is sofa_behind


def test_app_clicks_become_points_and_boxes() -> None:
    text, corner = add_click("", 10.4, 20.6, box_mode=False, corner=None)
    assert (text, corner) == ("A: 10, 21", None)
    text, corner = add_click(text, 30, 40, box_mode=True, corner=None)
    assert (text, corner) == ("A: 10, 21", [30, 40])
    text, corner = add_click(text, 5, 60, box_mode=True, corner=corner)
    assert (text, corner) == ("A: 10, 21\n1: 5, 40, 30, 60", None)
    text, _ = add_click(text, 1, 2, box_mode=False, corner=None)
    marks = parse_marks(text)
    assert [(m.label, m.kind) for m in marks] == [("A", "point"), ("1", "box"), ("B", "point")]
    with pytest.raises(ValueError, match="mark line 1"):
        parse_marks("A 10 20")


def test_drawn_and_given_marks_reach_a_program(data_dir: Path) -> None:
    """The host's marks tool returns given marks first and drawn ones not given; its cache keeps
    the two apart."""
    pytest.importorskip("rapidocr_onnxruntime")
    from vpagent.config import load_settings
    from vpagent.tools.program_host import ProgramHost
    from vpagent.tools.toolbox import Toolbox

    toolbox = Toolbox(load_settings().toolbox_config(), specialists={})
    image = np.full((200, 300, 3), 235, dtype=np.uint8)
    cv2.circle(image, (200, 100), 20, (0, 0, 255), 3, cv2.LINE_AA)
    cv2.putText(image, "B", (225, 88), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 255), 3)
    drawn = ProgramHost(toolbox, image)
    args = {"image": drawn.image_id, "box": [0, 0, 300, 200]}
    assert [(h["label"], h["kind"]) for h in drawn("marks", args)] == [("B", "circle")]
    given = ProgramHost(toolbox, image, marks=[Mark.given("A", point=[30, 40])])
    hits = given("marks", {**args, "image": given.image_id})
    assert [(h["label"], h["kind"]) for h in hits] == [("A", "point"), ("B", "circle")]
    assert given.artifacts[0].boxes == hits  # the rationale draws the marks the program used


@pytest.mark.slow
def test_a_mark_on_a_known_object_returns_that_object(data_dir: Path) -> None:
    """A circle labelled A drawn on the middle of coco128's annotated zebra: the program's
    image.mark("A").object_at() is that zebra (its box overlaps the annotation)."""
    pytest.importorskip("rapidocr_onnxruntime")
    from vpagent.config import load_settings
    from vpagent.tools.offline.depth import VerticalPositionDepth
    from vpagent.tools.offline.detector import SSDCocoDetector
    from vpagent.tools.program_host import ProgramHost
    from vpagent.tools.toolbox import Toolbox

    path = data_dir / "coco128" / "images" / "000000000034.jpg"
    if not path.is_file():
        pytest.skip("no coco128 photos")
    zebra = [1.0, 20.0, 442.0, 399.0]  # the annotation (instances.json, image 34), xyxy rounded
    image = load_image(path).copy()
    x, y = 220, 210
    cv2.circle(image, (x, y), 18, (255, 0, 255), 3, cv2.LINE_AA)
    cv2.putText(image, "A", (x + 24, y - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 0, 255), 3)
    specialists = {"detector": SSDCocoDetector(), "depth": VerticalPositionDepth()}
    toolbox = Toolbox(load_settings().toolbox_config(), specialists=specialists)
    host = ProgramHost(toolbox, image)
    whole = {"image": host.image_id, "box": [0, 0, image.shape[1], image.shape[0]]}
    (mark,) = host("marks", whole)
    assert mark["label"] == "A"
    found = host("object_at", {**whole, "box": mark["box"]})
    assert found["label"] == "zebra"
    box = Box.of(found["box"])
    inter = Box.of([max(box.x0, zebra[0]), max(box.y0, zebra[1]), min(box.x1, zebra[2]),
                    min(box.y1, zebra[3])]).area  # fmt: skip
    assert inter / (box.area + Box.of(zebra).area - inter) > 0.5
    depth = host("point_depth", {**whole, "box": mark["box"]})
    assert depth == pytest.approx(1 - (box.y1 - 1) / (image.shape[0] - 1), abs=0.01)
