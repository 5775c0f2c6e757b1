"""Parts of a person by geometry, and the matcher's part and wearable checks on them."""

from __future__ import annotations

import numpy as np
import pytest

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.offline.parts import face_crop, part_box, part_of
from vpagent.tools.roles import FaceDetector
from vpagent.tools.types import Box, Detection, ToolInfo

pytest.importorskip("ai_edge_litert")
pytest.importorskip("sentence_transformers")

from vpagent.tools.offline.classifier import EfficientNetClassifier
from vpagent.tools.offline.matcher import ClassifierMatcher

GRAY, RED, BLUE, BLACK = (128, 128, 128), (200, 30, 30), (30, 40, 190), (15, 15, 15)
SKIN = (220, 170, 140)


def standing_person(height: int = 200, width: int = 80) -> np.ndarray:
    """A flat-coloured figure: gray hair, skin, red shirt, blue trousers, black shoes."""
    crop = np.zeros((height, width, 3), dtype=np.uint8)
    for (top, bottom), colour in zip(
        [(0, 0.1), (0.1, 0.2), (0.2, 0.55), (0.55, 0.88), (0.88, 1.0)],
        [GRAY, SKIN, RED, BLUE, BLACK],
        strict=True,
    ):
        crop[int(top * height) : int(bottom * height)] = colour
    return crop


def test_part_words() -> None:
    assert part_of(["gray", "haired"]) == "hair"
    assert part_of(["red", "shirts"]) == "torso"
    assert part_of(["blue", "jeans"]) == "legs"
    assert part_of(["sneakers"]) == "feet"
    assert part_of(["smiling"]) is None


def test_parts_of_a_standing_and_a_waist_up_person() -> None:
    x0, y0, x1, y1 = part_box(100, 300, "torso")
    assert y0 > 0 and y1 < 300 * 0.6 and x1 - x0 > 80
    assert part_box(100, 300, "feet")[3] == 300
    assert part_box(200, 150, "legs") is None  # waist up: no legs in view
    assert part_box(200, 150, "torso")[3] == 150


def test_the_face_crop_is_the_largest_face_in_the_upper_part() -> None:
    person = np.zeros((200, 80, 3), dtype=np.uint8)
    small, large = Box(x0=30, y0=10, x1=40, y1=20), Box(x0=20, y0=5, x1=60, y1=45)
    assert face_crop(person, [small, large]).shape == (40, 40, 3)
    assert face_crop(person, [Box(x0=20, y0=120, x1=60, y1=160)]) is None  # a face at the knees
    assert face_crop(person, []) is None


def test_face_boxes_are_clipped_to_the_person_crop() -> None:
    person = np.zeros((200, 80, 3), dtype=np.uint8)
    above = Box(x0=10, y0=-50, x1=70, y1=-10)  # wholly outside: no face, not the whole crop
    assert face_crop(person, [above]) is None
    mostly_out = Box(x0=-200, y0=0, x1=5, y1=40)  # large, but 5x40 of it is in the crop
    inside = Box(x0=30, y0=10, x1=50, y1=30)
    assert face_crop(person, [mostly_out, inside]).shape == (20, 20, 3)


class FixedFaces(FaceDetector):
    """Reports the same face boxes for every image."""

    backend = "fixed"

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes

    def detect_faces(self, image) -> list[Detection]:  # type: ignore[no-untyped-def]
        return [Detection(box=box, score=1.0, label="face") for box in self.boxes]

    def info(self) -> ToolInfo:
        return ToolInfo(role=self.role, backend=self.backend, model="fixed", device="cpu")


TIE = 906  # "Windsor tie"


class FaceOnlyClassifier(EfficientNetClassifier):
    """Sees sunglasses and a tie only in a crop of the given size (the face), nothing in other
    crops; records the size of every crop it classifies."""

    def __init__(self, face_shape: tuple[int, int]) -> None:
        super().__init__()
        self.face_shape = face_shape
        self.shapes: list[tuple[int, ...]] = []

    def probabilities(self, image) -> np.ndarray:  # type: ignore[no-untyped-def]
        shape = np.asarray(image).shape
        self.shapes.append(shape[:2])
        probs = np.full(1000, 1 / 1000, dtype=np.float32)
        if shape[:2] == self.face_shape:
            probs[:] = 0.2 / 998
            probs[SUNGLASSES] = probs[TIE] = 0.4
        return probs


@pytest.mark.slow  # loads MiniLM
def test_sunglasses_are_also_looked_for_on_a_face_box() -> None:
    """A small face in a loose head crop: the head crop shows no sunglasses, the face box does;
    a tie is not looked for on the face, and no face found leaves the head crop's answer."""
    face = Box(x0=30, y0=6, x1=50, y1=30)
    classifier = FaceOnlyClassifier(face_shape=(24, 20))
    person = standing_person()
    with_face = ClassifierMatcher(classifier=classifier, faces=FixedFaces([face]))
    assert with_face.verify(person, "man", "wearing sunglasses")
    classifier.shapes.clear()
    assert not with_face.verify(person, "man", "wearing a tie")
    assert (24, 20) not in classifier.shapes  # the torso only
    no_face = ClassifierMatcher(classifier=classifier, faces=FixedFaces([]))
    assert not no_face.verify(person, "man", "wearing sunglasses")


class FixedClassifier(EfficientNetClassifier):
    """The real label table; probabilities are 0.5 on one label, and each input is recorded."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.shapes: list[tuple[int, ...]] = []

    def probabilities(self, image) -> np.ndarray:  # type: ignore[no-untyped-def]
        self.shapes.append(np.asarray(image).shape)
        probs = np.full(1000, 0.5 / 999, dtype=np.float32)
        probs[self.index] = 0.5
        return probs


SUNGLASSES = 837


@pytest.fixture(scope="module")
def matcher() -> ClassifierMatcher:
    return ClassifierMatcher(classifier=FixedClassifier(SUNGLASSES), faces=FixedFaces([]))


@pytest.mark.slow  # loads MiniLM
def test_part_colours_are_read_on_the_part(matcher: ClassifierMatcher) -> None:
    person = standing_person()
    assert matcher.verify(person, "man", "red shirt")
    assert not matcher.verify(person, "man", "blue shirt")
    assert matcher.verify(person, "woman", "wearing blue pants")
    assert matcher.verify(person, "person", "gray-haired")
    assert matcher.verify(person, "person", "black shoes")
    assert not matcher.verify(person, "person", "red shoes")


@pytest.mark.slow  # loads MiniLM
def test_a_part_out_of_view_is_refused(matcher: ClassifierMatcher) -> None:
    waist_up = standing_person()[:100]  # wider than tall after the cut: no legs in view
    waist_up = np.concatenate([waist_up, waist_up], axis=1)
    with pytest.raises(CannotAnswer, match="legs"):
        matcher.verify(waist_up, "man", "blue trousers")


@pytest.mark.slow  # loads MiniLM
def test_wearables_are_classified_on_their_part(matcher: ClassifierMatcher) -> None:
    classifier = matcher.classifier
    assert isinstance(classifier, FixedClassifier)
    person = standing_person()
    classifier.shapes.clear()
    assert matcher.verify(person, "man", "wearing sunglasses")
    x0, y0, x1, y1 = part_box(80, 200, "head")
    assert classifier.shapes == [(y1 - y0, x1 - x0, 3)]  # the head, not the whole person
    classifier.shapes.clear()
    assert not matcher.verify(person, "man", "wearing a tie")  # its labels get no mass
    assert classifier.shapes[0][0] < 200  # the torso


def test_a_two_colour_alias_is_ranked_by_its_better_colour(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import vpagent.tools.offline.matcher as matcher_module

    shares = dict.fromkeys(("black", "red", "orange", "yellow", "green", "purple", "pink"), 0.0)
    shares.update(blue=0.4, gray=0.3, white=0.3, brown=0.0)
    monkeypatch.setattr(matcher_module, "object_distribution", lambda image, name: shares)
    matcher = ClassifierMatcher(classifier=FixedClassifier(SUNGLASSES))
    image = np.zeros((20, 20, 3), dtype=np.uint8)
    assert matcher.best_match(image, ["silver", "blue", "red"]) == 1  # not gray + white = 0.6
    assert matcher.best_match(image, ["red", "silver"]) == 1
