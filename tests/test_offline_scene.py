"""Scene description, caption stand-in and VQA stand-in (with a fake LLM)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.types import Box, Detection, TextLine, ToolInfo

pytest.importorskip("cv2")

from vpagent.tools.offline.scene import (
    LEGEND,
    MAX_LISTED,
    SceneCaptioner,
    SceneVQA,
    clean_reply,
    describe_scene,
    position_words,
)
from vpagent.tools.roles import OCR, Detector


class FixedDetector(Detector):
    def __init__(self, detections: list[Detection]) -> None:
        self.detections = detections
        self.calls = 0

    def detect_batch(self, images, names):  # type: ignore[no-untyped-def]
        self.calls += 1
        return [[d for d in self.detections if d.label in wanted] for wanted in names]

    def info(self) -> ToolInfo:
        return ToolInfo(role="detector", backend="fixed", model="none")


class FixedOCR(OCR):
    def read(self, image):  # type: ignore[no-untyped-def]
        return [TextLine(text="cero emisiones", box=Box.of([540, 540, 690, 620]), confidence=0.99)]

    def info(self) -> ToolInfo:
        return ToolInfo(role="ocr", backend="fixed", model="none")


@pytest.fixture(scope="module")
def bus(images_dir: Path) -> np.ndarray:
    return load_image(images_dir / "bus.jpg")


BUS_DETECTIONS = [
    Detection(box=Box.of([5, 213, 810, 758]), score=0.93, label="bus"),
    Detection(box=Box.of([53, 394, 228, 898]), score=0.99, label="person"),
    Detection(box=Box.of([224, 407, 355, 861]), score=0.85, label="person"),
]


def test_description_lists_objects_colours_and_text(bus: np.ndarray) -> None:
    text = describe_scene(bus, FixedDetector(BUS_DETECTIONS), None, FixedOCR())
    assert "810x1080" in text
    assert text.startswith(LEGEND)  # the description explains itself
    assert "box [left, top, right, bottom] in percent" in text
    assert "- bus #1 [1, 20, 100, 70] " in text and "mostly blue" in text  # 810x1080 pixels
    assert "person #2" in text and "Counts: 2 person, 1 bus." in text
    assert '"cero emisiones"' in text


def test_a_crowded_scene_lists_the_objects_the_question_names_and_counts_all(
    bus: np.ndarray,
) -> None:
    crowd = [
        Detection(box=Box.of([10 * i, 400, 10 * i + 40, 500]), score=0.9 - i / 100, label="person")
        for i in range(15)
    ] + [Detection(box=Box.of([700, 900, 780, 1000]), score=0.3, label="potted plant")]
    vqa = SceneVQA(lambda prompt: "yes", FixedDetector(crowd), None, None)
    plain = vqa.describe(bus)
    asked = vqa.describe(bus, "Are there plants in the street?")
    for text in (plain, asked):
        assert f"{MAX_LISTED} of 16 shown" in text and "Counts: 15 person, 1 potted plant." in text
        assert text.count("\n- ") == MAX_LISTED
    assert "potted plant #1" not in plain  # the lowest score: left out when nothing names it
    assert "potted plant #1 [86, 83, 96, 93]" in asked  # named by the question: listed
    assert "person #1 " in asked and f"person #{MAX_LISTED - 1} " in asked
    assert f"person #{MAX_LISTED} " not in asked  # it gave its place to the plant
    assert "potted plant #1" in vqa.prompt(bus, "Is the plant on the left?")


def test_classifier_labels_that_say_nothing_are_left_out(bus: np.ndarray) -> None:
    class Labels:
        def top_labels(self, image, k):  # type: ignore[no-untyped-def]
            return [("trolleybus", 0.81), ("minibus", 0.04)]

    text = describe_scene(bus, None, Labels(), None)  # type: ignore[arg-type]
    assert "trolleybus 81%" in text and "minibus" not in text


def test_description_says_what_is_missing(bus: np.ndarray) -> None:
    text = describe_scene(bus, FixedDetector([]), None, None)
    assert "Objects: none." in text
    assert "Text (OCR)" not in text


def test_caption_is_built_from_the_description(bus: np.ndarray) -> None:
    captioner = SceneCaptioner(FixedDetector(BUS_DETECTIONS), None, FixedOCR())
    caption = captioner.caption(bus)
    assert caption.startswith("A photo of two people and a bus.")
    assert "the bus is blue" in caption.lower() and '"cero emisiones"' in caption
    assert captioner.info().stand_in


def test_vqa_asks_the_llm_over_the_description_once_per_image(bus: np.ndarray) -> None:
    prompts: list[str] = []

    def llm(prompt: str) -> str:
        prompts.append(prompt)
        return "Answer: blue." if "colour" in prompt.split("Question:")[1] else "unknown"

    detector = FixedDetector(BUS_DETECTIONS)
    vqa = SceneVQA(llm, detector, None, None)
    assert vqa.answer(bus, "What colour is the bus?") == "blue"
    assert "mostly blue" in prompts[0] and "What colour is the bus?" in prompts[0]
    with pytest.raises(CannotAnswer, match="scene-description VQA stand-in"):
        vqa.answer(bus, "Is it raining?")
    assert detector.calls == 1  # the description is cached per image
    assert vqa.info().stand_in and vqa.info().backend == "scene-description-llm"


def test_vqa_guesses_when_asked_and_says_so_only_through_the_caller(bus: np.ndarray) -> None:
    prompts: list[str] = []

    def llm(prompt: str) -> str:
        prompts.append(prompt)
        return "unknown" if "Never reply unknown" not in prompt else "Answer: yes."

    vqa = SceneVQA(llm, FixedDetector(BUS_DETECTIONS), None, None)
    with pytest.raises(CannotAnswer):
        vqa.answer(bus, "Is it raining?")
    assert vqa.guess(bus, "Is it raining?") == "yes"
    assert "most likely answer" in prompts[-1] and "mostly blue" in prompts[-1]
    refused, guessed = prompts
    through_question = refused[: refused.index("Is it raining?") + len("Is it raining?")]
    assert guessed.startswith(through_question)  # in the model's cache: not read again
    other = vqa.prompt(bus[:500], "What is it?")
    legend_end = refused.index("Description:")
    assert other[:legend_end] == refused[:legend_end]  # the same start for every image
    stubborn = SceneVQA(lambda prompt: "I don't know", FixedDetector(BUS_DETECTIONS), None, None)
    with pytest.raises(CannotAnswer, match="no guess"):
        stubborn.guess(bus, "Is it raining?")


def test_helpers() -> None:
    assert clean_reply("\n  Answer: 'Two dogs'.\nmore") == "Two dogs"
    assert position_words(Box.of([0, 0, 10, 10]), 100, 100) == "top left"
    assert position_words(Box.of([40, 40, 60, 60]), 100, 100) == "center"


@pytest.mark.slow
def test_offline_specialists_describe_the_real_photo(bus: np.ndarray) -> None:
    pytest.importorskip("rapidocr_onnxruntime")
    captioner = SceneCaptioner.offline()
    text = captioner.describe(bus)
    assert "bus #1" in text and "person #3" in text
    assert "minibus" in text  # ImageNet top label
    assert "emisiones" in text  # OCR
    assert "bus" in captioner.caption(bus)
