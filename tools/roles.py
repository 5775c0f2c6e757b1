"""One interface per role. Backends implement the batch method; single calls batch one.

Images are RGB ``uint8`` numpy arrays of shape (H, W, 3).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.types import Box, Detection, Mask, PropertyEvidence, TextLine, ToolInfo

Image = np.ndarray


class Specialist(ABC):
    """Common base: every backend can describe itself for `vpagent doctor`."""

    role: str = ""

    @abstractmethod
    def info(self) -> ToolInfo: ...


class Detector(Specialist):
    """Open- or closed-vocabulary object detector."""

    role = "detector"
    reads_attributes: bool = True  # False: "black dog" finds every dog (closed vocabulary)
    score_threshold: float | None = None  # the least score it reports, where it has one

    @abstractmethod
    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        """For each image, the detections of its query names (label = the query name)."""

    def detect(self, image: Image, names: list[str]) -> list[Detection]:
        return self.detect_batch([image], [names])[0]

    def search(self, image: Image, name: str) -> list[Detection]:
        """A harder search for ``name`` (``find(..., thorough=True)``): tiles, a flip, a lower
        threshold where the backend has them; plain detection otherwise."""
        return self.detect(image, [name])


class Segmenter(Specialist):
    """Promptable segmenter: a box or a point in, a mask out."""

    role = "segmenter"

    @abstractmethod
    def segment_batch(
        self, images: list[Image], boxes: list[Box | None], points: list[tuple[float, float] | None]
    ) -> list[Mask]: ...

    def segment(
        self, image: Image, box: Box | None = None, point: tuple[float, float] | None = None
    ) -> Mask:
        return self.segment_batch([image], [box], [point])[0]


class Matcher(Specialist):
    """Image-text similarity (CLIP-style)."""

    role = "matcher"

    @abstractmethod
    def score_batch(self, images: list[Image], texts: list[list[str]]) -> list[list[float]]:
        """For each image, a probability-like score per text (higher is a better match)."""

    def scores(self, image: Image, texts: list[str]) -> list[float]:
        return self.score_batch([image], [texts])[0]

    def best_match(self, image: Image, options: list[str]) -> int:
        """Index of the option that best describes the image."""
        scores = self.scores(image, options)
        return int(np.argmax(scores))

    def verify(self, image: Image, name: str, prop: str) -> bool:
        """Whether the `name` in the image has `prop` (ViperGPT's contrast with a negation)."""
        return self.property_evidence(image, name, prop).holds

    def property_evidence(self, image: Image, name: str, prop: str) -> PropertyEvidence:
        """Graded evidence that the `name` in the image has `prop`: the margin of the text
        with the property over its negation, and whether it is positive."""
        positive, negative = self.scores(image, [f"{prop} {name}", f"{name} that is not {prop}"])
        return PropertyEvidence(score=positive - negative, holds=positive > negative)


class Captioner(Specialist):
    role = "captioner"

    @abstractmethod
    def caption_batch(self, images: list[Image]) -> list[str]: ...

    def caption(self, image: Image) -> str:
        return self.caption_batch([image])[0]


class VQA(Specialist):
    role = "vqa"

    @abstractmethod
    def answer_batch(self, images: list[Image], questions: list[str]) -> list[str]: ...

    def answer(self, image: Image, question: str) -> str:
        return self.answer_batch([image], [question])[0]

    def guess(self, image: Image, question: str) -> str:
        """A best guess where another tool cannot answer (marked unverified in the trace).

        Often asked right after :meth:`answer` refused the same question: a backend may reuse
        that call's work (its prompt's cached start). A backend that cannot guess raises
        CannotAnswer: the original refusal then stands.
        """
        raise CannotAnswer(f"the {type(self).__name__} VQA backend offers no guesses")


class OCR(Specialist):
    role = "ocr"

    @abstractmethod
    def read(self, image: Image) -> list[TextLine]: ...


class DepthEstimator(Specialist):
    role = "depth"

    @abstractmethod
    def depth_batch(self, images: list[Image]) -> list[np.ndarray]:
        """Per image an (H, W) float32 map; larger values are farther from the camera."""

    def depth(self, image: Image) -> np.ndarray:
        return self.depth_batch([image])[0]


class FaceDetector(Specialist):
    role = "faces"

    @abstractmethod
    def detect_faces(self, image: Image) -> list[Detection]: ...
