"""Saving and loading traces as JSON, atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from vpagent.trace.records import Trace


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def save_trace(trace: Trace, directory: Path) -> Path:
    """Write ``trace`` as ``<directory>/<id>.json`` and return the path."""
    path = Path(directory) / f"{trace.id}.json"
    atomic_write_text(path, trace.model_dump_json(indent=2))
    return path


def load_trace(path: Path) -> Trace:
    """Read a trace written by :func:`save_trace`."""
    return Trace.model_validate_json(Path(path).read_text(encoding="utf-8"))
