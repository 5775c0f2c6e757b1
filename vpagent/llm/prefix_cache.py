"""A planner prompt prefix computed once, kept on disk, restored into llama.cpp at start-up.

The planner's prompt opens with a static prefix (rules, API spec, fixed examples). llama.cpp
keeps the KV cache of the last prompt in memory, so from the second question on only the
question is new work. This module makes the first question cheap too: the prefix's KV cache is
saved with llama.cpp's slot save/restore into a folder, keyed by the model file and the exact
prefix, and restored when a later process starts.

Every file is written under a temporary name and renamed, and a JSON sidecar records its
sha256, so two processes sharing the folder never read a half-written file. A file that is
missing, corrupt, unreadable or from another model is ignored with a warning and rebuilt; a
folder that cannot be written only costs the persistence (the in-memory cache still works).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from vpagent.llm.embedded import EmbeddedLlamaServer, EmbeddedServerError
from vpagent.llm.packs import sha256_file

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the file layout or key changes
WARM_TIMEOUT_SECONDS = 3600.0  # a 2k-token prefix takes ~1 min on 2 quiet cores, far more when busy
WARM_QUESTION = "Question: Is there a cat?"  # any question: only the prefix before it is reused

Outcome = Literal["restored", "built", "built-not-saved"]


@dataclass(frozen=True)
class WarmResult:
    """What :func:`warm_prefix` did, and how long it took."""

    outcome: Outcome
    seconds: float
    tokens: int
    path: Path | None = None


def _runtime_version() -> str:
    try:
        return version("xllamacpp")
    except PackageNotFoundError:  # pragma: no cover - the server could not run without it
        return "unknown"


def prefix_key(server: EmbeddedLlamaServer, messages: list[dict[str, Any]]) -> str:
    """sha256 of what the KV cache depends on: the model file, runtime, context and prefix."""
    stat = server.model_path.stat()
    identity = {
        "format": FORMAT,
        "model": str(server.model_path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "runtime": _runtime_version(),
        "n_ctx": server.n_ctx,
        "slots": server.n_parallel,  # a file saved by a server with other slots will not load
        "messages": messages,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _try_restore(server: EmbeddedLlamaServer, key: str) -> int | None:
    """Tokens restored from ``key``'s file, or None when there is no usable file."""
    assert server.slot_dir is not None
    data, sidecar = server.slot_dir / f"{key}.bin", server.slot_dir / f"{key}.json"
    if not sidecar.is_file():
        return None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("sha256") != sha256_file(data):
            raise ValueError("its checksum does not match")
        restored = _restore_every_slot(server, data.name)
    except (OSError, ValueError, EmbeddedServerError) as error:
        log.warning("ignoring the planner prompt cache %s (%s); rebuilding it", data, error)
        return None
    return int(restored.get("n_restored", 0))


def _restore_every_slot(server: EmbeddedLlamaServer, filename: str) -> dict[str, Any]:
    """Load one saved prefix into each slot, so every parallel question starts warm."""
    restored: dict[str, Any] = {}
    for slot in range(server.n_parallel):
        restored = server.restore_slot(filename, slot)
    return restored


def _save(server: EmbeddedLlamaServer, key: str) -> Path | None:
    """Save the slot under a temporary name, then publish file and sidecar; None on failure."""
    assert server.slot_dir is not None
    temporary = f"{key}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        server.slot_dir.mkdir(parents=True, exist_ok=True)
        server.save_slot(temporary)
        written = server.slot_dir / temporary
        meta = {"key": key, "sha256": sha256_file(written), "model": str(server.model_path)}
        final = server.slot_dir / f"{key}.bin"
        os.replace(written, final)
        _atomic_write_text(server.slot_dir / f"{key}.json", json.dumps(meta))
    except (OSError, EmbeddedServerError) as error:
        log.warning("could not save the planner prompt cache in %s: %s", server.slot_dir, error)
        with contextlib.suppress(OSError):
            (server.slot_dir / temporary).unlink(missing_ok=True)
        return None
    return final


def warm_prefix(server: EmbeddedLlamaServer, prefix: list[dict[str, Any]]) -> WarmResult:
    """Make ``server`` hold the KV cache of ``prefix``: restored from disk, else computed once.

    ``prefix`` is the planner's static messages (OpenAI format). Without a ``slot_dir`` the
    prefix is computed and kept in memory only.
    """
    started = time.perf_counter()
    key = prefix_key(server, prefix)
    if server.slot_dir is not None:
        tokens = _try_restore(server, key)
        if tokens is not None:
            return WarmResult("restored", time.perf_counter() - started, tokens)
    reply = server.chat(
        [*prefix, {"role": "user", "content": WARM_QUESTION}],
        timeout=WARM_TIMEOUT_SECONDS,
        max_tokens=1,
        temperature=0.0,
        id_slot=0,  # the slot saved below
    )
    tokens = int(reply.get("usage", {}).get("prompt_tokens", 0))
    path = _save(server, key) if server.slot_dir is not None else None
    if path is not None and server.n_parallel > 1:
        try:
            _restore_every_slot(server, path.name)
        except EmbeddedServerError as error:  # the other slots compute the prefix on first use
            log.warning("could not copy the prompt prefix into every slot: %s", error)
    outcome: Outcome = "built" if path is not None else "built-not-saved"
    return WarmResult(outcome, time.perf_counter() - started, tokens, path)
