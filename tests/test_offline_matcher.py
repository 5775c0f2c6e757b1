"""Matcher stand-in: ImageNet labels + MiniLM similarity + colour naming, on the dev photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.errors import CannotAnswer

pytest.importorskip("ai_edge_litert")
pytest.importorskip("sentence_transformers")
pytestmark = pytest.mark.slow

from vpagent.tools.offline.classifier import EfficientNetClassifier  # noqa: E402
from vpagent.tools.offline.matcher import ClassifierMatcher, split_text  # noqa: E402


@pytest.fixture(scope="module")
def matcher() -> ClassifierMatcher:
    return ClassifierMatcher()


@pytest.fixture(scope="module")
def crops(images_dir: Path) -> dict[str, np.ndarray]:
    bus = load_image(images_dir / "bus.jpg")
    truck = load_image(images_dir / "truck.jpg")
    dogs = load_image(images_dir / "two_dogs.jpg")
    return {
        "bus": bus[213:758, 5:810],
        "truck": truck[278:858, 104:1722],
        "black dog": dogs[218:592, 552:769],
        "golden dog": dogs[188:575, 449:624],
        "two dogs": dogs,
    }


def test_split_text() -> None:
    assert split_text("a red car") == (["red"], "car")
    assert split_text("Blue") == (["blue"], "")
    assert split_text("photo of a dog") == ([], "dog")


def test_classifier_sees_the_dev_photos(crops: dict[str, np.ndarray]) -> None:
    classifier = EfficientNetClassifier()
    assert classifier.top_k(crops["truck"], 1)[0][0] == "pickup"
    top = classifier.top_k(crops["golden dog"], 3)
    assert all(label.endswith("(dog)") for label, _ in top)
    assert 0.8 < sum(p for _, p in classifier.top_k(crops["bus"], 1000)) <= 1.0  # uint8 softmax


def test_object_words_rank_by_label_similarity(
    matcher: ClassifierMatcher, crops: dict[str, np.ndarray]
) -> None:
    dog, cat, bus = matcher.scores(crops["two dogs"], ["dog", "cat", "bus"])
    assert dog > cat > bus
    assert matcher.best_match(crops["truck"], ["dog", "pickup truck", "airplane"]) == 1
    assert all(0.0 <= s <= 1.0 for s in matcher.scores(crops["bus"], ["bus", "red bus", "kite"]))


def test_colour_options_go_to_the_colour_namer(
    matcher: ClassifierMatcher, crops: dict[str, np.ndarray]
) -> None:
    assert matcher.best_match(crops["bus"], ["red bus", "blue bus", "white bus"]) == 1
    assert matcher.best_match(crops["truck"], ["red truck", "white truck"]) == 1
    assert matcher.best_match(crops["black dog"], ["golden", "black"]) == 1


def test_verify_colours_and_categories(
    matcher: ClassifierMatcher, crops: dict[str, np.ndarray]
) -> None:
    assert matcher.verify(crops["truck"], "truck", "white")
    assert not matcher.verify(crops["truck"], "truck", "red")
    assert matcher.verify(crops["bus"], "bus", "blue")
    assert matcher.verify(crops["golden dog"], "dog", "retriever")
    assert not matcher.verify(crops["truck"], "truck", "retriever")


def test_property_evidence_ranks_objects_and_person_parts(matcher: ClassifierMatcher) -> None:
    def person(shirt: tuple[int, int, int]) -> np.ndarray:
        crop = np.full((200, 80, 3), 200, dtype=np.uint8)  # a whole standing person's box
        crop[40:110] = shirt  # torso
        crop[110:] = (40, 40, 40)  # dark trousers
        return crop

    red, blue = person((200, 30, 30)), person((30, 40, 200))
    shirt = [matcher.property_evidence(p, "man", "in a red shirt") for p in (red, blue)]
    assert shirt[0].holds and not shirt[1].holds and shirt[0].score > shirt[1].score
    verdicts = [matcher.verify(p, "man", "in a red shirt") for p in (red, blue)]
    assert verdicts == [e.holds for e in shirt]


def test_two_colours_must_both_be_there(matcher: ClassifierMatcher) -> None:
    red_and_white = np.full((120, 120, 3), 235, dtype=np.uint8)
    red_and_white[:, :60] = (200, 30, 30)
    red = np.full((120, 120, 3), (200, 30, 30), dtype=np.uint8)
    assert matcher.property_evidence(red_and_white, "flag", "red and white").holds
    assert not matcher.property_evidence(red, "flag", "red and white").holds


def test_unverifiable_properties_are_refused(
    matcher: ClassifierMatcher, crops: dict[str, np.ndarray]
) -> None:
    with pytest.raises(CannotAnswer, match="matcher stand-in"):
        matcher.verify(crops["truck"], "truck", "parked")


def test_info_names_the_stand_in(matcher: ClassifierMatcher) -> None:
    info = matcher.info()
    assert info.stand_in and info.backend == "classifier-minilm" and "CLIP" in info.note
