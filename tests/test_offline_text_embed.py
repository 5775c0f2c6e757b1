"""MiniLM embedder caching (with a fake model), its torch threads, and the lazy holder."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.offline.text_embed import EMBEDDING_DIM, TORCH_THREADS, MiniLMEmbedder


class FakeModel:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str], **kwargs: object) -> np.ndarray:
        self.calls.append(list(texts))
        rows = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        for i, text in enumerate(texts):
            rows[i, hash(text) % EMBEDDING_DIM] = 1.0
        return rows


def _embedder(tmp_path: Path) -> tuple[MiniLMEmbedder, FakeModel]:
    embedder = MiniLMEmbedder(folder=tmp_path / "model")
    model = FakeModel()
    embedder._model = Lazy(lambda: model)
    return embedder, model


def test_texts_are_encoded_once_per_process(tmp_path: Path) -> None:
    embedder, model = _embedder(tmp_path)
    first = embedder.encode(["Dog", "cat", "dog"])
    assert first.shape == (3, EMBEDDING_DIM)
    np.testing.assert_array_equal(first[0], first[2])  # case and repeats share one row
    embedder.encode(["cat", "bus"])
    assert model.calls == [["dog", "cat"], ["bus"]]
    assert embedder.encode([]).shape == (0, EMBEDDING_DIM)
    assert embedder.similarity(["dog"], ["dog", "bus"]).shape == (1, 2)


def test_encoding_runs_torch_on_one_thread_and_restores_the_setting(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    embedder, model = _embedder(tmp_path)
    seen: list[int] = []
    encode = model.encode
    model.encode = lambda texts, **kwargs: seen.append(torch.get_num_threads()) or encode(texts)  # type: ignore[method-assign]
    before = torch.get_num_threads()
    embedder.encode(["dog"])
    assert seen == [TORCH_THREADS] and torch.get_num_threads() == before


def test_without_torch_imported_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from vpagent.tools.offline.text_embed import torch_threads

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    with torch_threads(1):
        assert "torch" not in sys.modules  # not imported by the setting itself


def test_vocabularies_are_cached_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPAGENT_CACHE_DIR", str(tmp_path / "cache"))
    embedder, _ = _embedder(tmp_path)
    vocabulary = [f"label {i}" for i in range(50)]
    vectors = embedder.encode_vocabulary(vocabulary)
    assert len(list((tmp_path / "cache" / "embeddings").glob("minilm-*.npy"))) == 1
    again, fresh_model = _embedder(tmp_path)
    np.testing.assert_array_equal(again.encode_vocabulary(vocabulary), vectors)
    assert fresh_model.calls == []  # read back from disk, no model needed
    again.encode_vocabulary([*vocabulary, "one more"])
    assert fresh_model.calls and len(fresh_model.calls[0]) == 51


def test_lazy_builds_once_and_retries_after_failure() -> None:
    attempts: list[int] = []

    def build() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("package missing")
        return "model"

    lazy = Lazy(build)
    assert not lazy.loaded
    with pytest.raises(RuntimeError):
        lazy.get()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(lazy.get())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["model"] * 8 and len(attempts) == 2 and lazy.loaded
