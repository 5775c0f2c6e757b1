"""Deterministic fake specialists, for testing the server, host and runner without models."""

from __future__ import annotations

import threading

import numpy as np

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.roles import VQA, Detector, Matcher, Segmenter
from vpagent.tools.types import Box, Detection, Mask, ToolInfo


class BrightSpotDetector(Detector):
    """'Detects' a 'spot' at each 10x10 block whose mean brightness is above 200."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.lock = threading.Lock()

    def info(self) -> ToolInfo:
        return ToolInfo(role="detector", backend="fake", model="bright-spots", stand_in=True)

    def detect_batch(
        self, images: list[np.ndarray], names: list[list[str]]
    ) -> list[list[Detection]]:
        with self.lock:
            self.batch_sizes.append(len(images))
        results = []
        for image, wanted in zip(images, names, strict=True):
            if any(name not in ("spot", "broken") for name in wanted):
                raise CannotAnswer(f"cannot detect {wanted}")
            if "broken" in wanted:
                raise RuntimeError("model exploded")
            hits = []
            for y in range(0, image.shape[0] - 9, 10):
                for x in range(0, image.shape[1] - 9, 10):
                    if image[y : y + 10, x : x + 10].mean() > 200:
                        box = Box(x0=x, y0=y, x1=x + 10, y1=y + 10)
                        hits.append(Detection(box=box, score=0.9, label="spot"))
            results.append(hits)
        return results


class RednessMatcher(Matcher):
    def info(self) -> ToolInfo:
        return ToolInfo(role="matcher", backend="fake", model="redness", stand_in=True)

    def score_batch(self, images: list[np.ndarray], texts: list[list[str]]) -> list[list[float]]:
        out = []
        for image, options in zip(images, texts, strict=True):
            red = float(image[..., 0].mean()) / 255
            out.append([1 - red if "not" in text.split() else red for text in options])
        return out


class EchoVQA(VQA):
    def info(self) -> ToolInfo:
        return ToolInfo(role="vqa", backend="fake", model="echo", stand_in=True)

    def answer_batch(self, images: list[np.ndarray], questions: list[str]) -> list[str]:
        return [f"{q} ({i.shape[1]}x{i.shape[0]})" for i, q in zip(images, questions, strict=True)]


class BoxFillSegmenter(Segmenter):
    def info(self) -> ToolInfo:
        return ToolInfo(role="segmenter", backend="fake", model="box-fill", stand_in=True)

    def segment_batch(self, images, boxes, points):  # type: ignore[no-untyped-def]
        masks = []
        for image, box in zip(images, boxes, strict=True):
            pixels = np.zeros(image.shape[:2], dtype=bool)
            if box is not None:
                pixels[int(box.y0) : int(box.y1) // 2, int(box.x0) : int(box.x1)] = True
            masks.append(Mask(pixels=pixels))
        return masks


def spots_image() -> np.ndarray:
    """A 60x80 dark image with two bright 10x10 spots (left and right) and a red left half."""
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[:, :40, 0] = 180
    image[20:30, 10:20] = 255
    image[20:30, 60:70] = 255
    return image
