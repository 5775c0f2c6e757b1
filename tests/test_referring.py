"""Referring expressions: "the red spot" ranks a closed-vocabulary detector's boxes by the
property the name asks for; open-vocabulary detectors get the phrase unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.fakes import BrightSpotDetector, RednessMatcher
from vpagent.config import load_settings
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.referring import Reference, split_reference
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import Detection, PropertyEvidence


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("the black dog", Reference("dog", "black")),
        ("man in the black coat", Reference("man", "black coat")),
        ("gray-haired man", Reference("man", "gray-haired")),
        ("dog with a red collar", Reference("dog", "red collar")),
        ("person who is wearing a tie", Reference("person", "wearing tie")),
        ("red and white bus", Reference("bus", "red white")),
        ("hot dog", Reference("hot dog")),
        ("traffic light", Reference("traffic light")),
        ("black", Reference("black")),
        ("cup on the table", Reference("cup on table")),
        ("dog in the car", Reference("dog in car")),
        ("man with a dog", Reference("man with dog")),
        ("man with a hat", Reference("man", "hat")),
        ("dark-blue car", Reference("car", "dark blue")),
        ("black-and-white dog", Reference("dog", "black white")),
    ],
)
def test_split_reference(name: str, expected: Reference) -> None:
    assert split_reference(name) == expected


class ClosedSpotDetector(BrightSpotDetector):
    """A closed-vocabulary detector: it knows "spot" and refuses "red spot", as YOLO does."""

    reads_attributes = False


class OpenSpotDetector(BrightSpotDetector):
    """An open-vocabulary detector: "red spot" is a spot to it (it reads the phrase itself)."""

    def detect_batch(
        self, images: list[np.ndarray], names: list[list[str]]
    ) -> list[list[Detection]]:
        return super().detect_batch(images, [["spot"] for _ in names])


class RefusingMatcher(RednessMatcher):
    def property_evidence(self, image: np.ndarray, name: str, prop: str) -> PropertyEvidence:
        raise CannotAnswer(f"cannot check '{prop}'")


class HalfBlindMatcher(RednessMatcher):
    """Cannot see the property on dim crops (as a person's legs out of view in its box)."""

    def property_evidence(self, image: np.ndarray, name: str, prop: str) -> PropertyEvidence:
        if image[..., 0].mean() < 120:
            raise CannotAnswer("the legs are not in view")
        return super().property_evidence(image, name, prop)


def two_spots(left_red: int, right_red: int) -> np.ndarray:
    """A dark 60x80 image with a bright spot on the left and one on the right."""
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[20:30, 10:20] = (left_red, 255, 255)
    image[20:30, 60:70] = (right_red, 255, 255)
    return image


def host_for(image: np.ndarray, detector: BrightSpotDetector, matcher=None) -> ProgramHost:  # type: ignore[no-untyped-def]
    specialists = {"detector": detector, "matcher": matcher or RednessMatcher()}
    return ProgramHost(Toolbox(load_settings().toolbox_config(), specialists=specialists), image)


def lefts(hits: list[dict]) -> list[float]:
    return [hit["box"][0] for hit in hits]


def find(host: ProgramHost, name: str, thorough: bool = False) -> list[dict]:
    args = {"image": host.image_id, "box": [0, 0, 80, 60], "name": name, "thorough": thorough}
    return host("find", args)


def test_find_keeps_only_the_boxes_with_the_property() -> None:
    host = host_for(two_spots(left_red=100, right_red=255), ClosedSpotDetector())
    assert lefts(find(host, "spot")) == [10, 60]
    assert lefts(find(host, "red spot")) == [60]
    ranking = host.artifacts[1].attribute
    assert ranking["property"] == "red" and ranking["holds"] == [True]
    assert host.artifacts[1].unverified is None


def test_locate_puts_the_best_match_first_and_says_when_none_clearly_matches() -> None:
    host = host_for(two_spots(left_red=255, right_red=100), ClosedSpotDetector())
    assert lefts(find(host, "the red spot", thorough=True)) == [10, 60]
    assert host.artifacts[0].unverified is None
    pale = host_for(two_spots(left_red=100, right_red=120), ClosedSpotDetector())
    assert lefts(find(pale, "red spot", thorough=True)) == [60, 10]
    assert "closest match" in pale.artifacts[0].unverified
    assert find(pale, "red spot") == []  # find promises the property: none has it


def test_an_open_vocabulary_detector_reads_the_phrase_itself() -> None:
    host = host_for(two_spots(left_red=100, right_red=255), OpenSpotDetector())
    assert lefts(find(host, "red spot")) == [10, 60]
    assert host.artifacts[0].attribute is None


def test_a_property_the_matcher_cannot_check_keeps_every_box_and_says_so() -> None:
    host = host_for(two_spots(100, 255), ClosedSpotDetector(), RefusingMatcher())
    assert lefts(find(host, "spot with a red stripe")) == [10, 60]
    assert "could not be checked" in host.artifacts[0].unverified
    assert host.artifacts[0].attribute["ranked"] is False


def test_a_box_the_matcher_cannot_check_ranks_last_and_the_others_are_still_ranked() -> None:
    host = host_for(two_spots(100, 255), ClosedSpotDetector(), HalfBlindMatcher())
    assert lefts(find(host, "red spot", thorough=True)) == [60, 10]
    assert host.artifacts[0].attribute["scores"][1] is None  # no evidence, not a number
    assert lefts(find(host, "red spot")) == [60]
