"""The embedded student's frozen image encoder: feature maps -> cached (81, D) token features.

By default it reads EfficientNet-Lite3's pre-pool feature map (the ``grid``: 81 tokens of 1280
ReLU6 activations, scaled to [0, 1]); other eyes add maps of their own (``feature_maps.py``),
concatenated per token. The encoder is frozen, so features are computed once per image and
cached by the content hash of its pixels and the encoder's name (in memory and, optionally, as
``.npy`` on disk).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vpagent.images import load_image
from vpagent.student.feature_maps import NUM_IMAGE_TOKENS, EfficientNetMaps, FeatureMaps


def image_digest(image: np.ndarray | Path) -> str:
    """The feature cache key: sha256 of a file's bytes, or of an array's shape and pixels."""
    if isinstance(image, Path):
        return "file-" + hashlib.sha256(image.read_bytes()).hexdigest()
    digest = hashlib.sha256(str(image.shape).encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


class FeatureEncoder:
    """Image -> (81, feature_dim) float32 features of frozen networks, cached by content."""

    num_tokens = NUM_IMAGE_TOKENS

    def __init__(
        self,
        sources: Sequence[FeatureMaps] | None = None,
        cache_dir: Path | None = None,
        *,
        memory_items: int = 512,
    ) -> None:
        self.sources = list(sources) if sources is not None else [EfficientNetMaps()]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory_items = memory_items
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()

    @property
    def name(self) -> str:
        return "+".join(source.name for source in self.sources)

    @property
    def feature_dim(self) -> int:
        return sum(source.feature_dim for source in self.sources)

    def _compute(self, pixels: np.ndarray) -> np.ndarray:
        return np.concatenate([source.compute(pixels) for source in self.sources], axis=1)

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
        key = f"{image_digest(image)}-{self.name}"
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
