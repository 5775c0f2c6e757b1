"""Tool-result cache keyed by (image content hash, tool, arguments), in memory and on disk.

A cache has a namespace: what its results depend on besides their inputs (for the toolbox:
the tool configuration, the LLM stand-in tools ask, the vpagent version). Keys of another
namespace are never seen, so an on-disk cache shared across configurations stays correct.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import cachetools
import numpy as np


def json_digest(value: Any) -> str:
    """sha256 of ``value`` as canonical JSON (sorted keys, no spaces)."""
    payload = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def pixels_key(image: np.ndarray) -> str:
    """An image's identity for in-memory caches: a fast digest of its pixels, shape and dtype."""
    pixels = np.ascontiguousarray(image)
    digest = hashlib.blake2b(pixels.data, digest_size=16)
    digest.update(repr((pixels.shape, pixels.dtype.str)).encode())
    return digest.hexdigest()


def cache_key(image_sha256: str, tool: str, args: dict[str, Any]) -> str:
    """A stable key: the image's content hash, the tool, and its canonical JSON arguments."""
    return json_digest([image_sha256, tool, args])


class ResultCache:
    """A size-capped LRU of plain-data results, optionally backed by a JSON disk cache.

    Values must be JSON-serialisable: nothing is ever unpickled from disk.
    """

    def __init__(
        self, max_entries: int = 2048, directory: Path | None = None, namespace: str = ""
    ) -> None:
        self.namespace = namespace
        self._memory: cachetools.LRUCache[str, Any] | None = (
            cachetools.LRUCache(maxsize=max_entries) if max_entries > 0 else None
        )
        self._lock = threading.Lock()
        self._disk = None
        if directory is not None:
            import diskcache

            self._disk = diskcache.Cache(str(directory), disk=diskcache.JSONDisk)
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[bool, Any]:
        key = self._scoped(key)
        with self._lock:
            if self._memory is not None and key in self._memory:
                self.hits += 1
                return True, self._memory[key]
        if self._disk is not None:
            found = self._disk.get(key, default=_MISSING)
            if found is not _MISSING:
                self._remember(key, found)
                with self._lock:
                    self.hits += 1
                return True, found
        with self._lock:
            self.misses += 1
        return False, None

    def put(self, key: str, value: Any) -> None:
        key = self._scoped(key)
        self._remember(key, value)
        if self._disk is not None:
            self._disk.set(key, value)

    def _scoped(self, key: str) -> str:
        return f"{self.namespace}:{key}" if self.namespace else key

    def _remember(self, key: str, value: Any) -> None:
        with self._lock:
            if self._memory is not None:
                self._memory[key] = value

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


_MISSING = object()
