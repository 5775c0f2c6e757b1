"""Append-only JSONL files that survive crashes: whole lines, flushed and fsynced.

One writer appends one complete line per record and syncs it to disk; it holds an exclusive
lock on the file (``flock``), so a second writer is refused instead of interleaving lines. A
new file's directory is synced too (and so is the directory after :func:`write_atomic`'s
rename), or a power loss could drop a fully synced file. A crash can at worst leave a torn last
line (no newline, or not valid JSON); :func:`repair` cuts it off before the next run appends,
so a rerun resumes from the last whole record.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


class CorruptFile(ValueError):
    """A line other than the last is not valid JSON: the file was edited or damaged."""


class FileInUse(RuntimeError):
    """Another process is appending to the file (it holds the writer's lock)."""


def sync_directory(folder: Path) -> None:
    """Sync ``folder`` itself, so the names created or renamed in it survive a power loss."""
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _lines(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, raw line) for each line, the last one possibly torn."""
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            yield number, offset, raw
            offset += len(raw)


def repair(path: Path) -> int:
    """Cut a torn last line off ``path``; return the number of bytes removed (0 if none)."""
    if not path.is_file():
        return 0
    size = path.stat().st_size
    last: tuple[int, bytes] | None = None
    for _, offset, raw in _lines(path):
        last = (offset, raw)
    if last is None:
        return 0
    offset, raw = last
    if raw.endswith(b"\n") and _parses(raw):
        return 0
    with open(path, "r+b") as handle:
        handle.truncate(offset)
        handle.flush()
        os.fsync(handle.fileno())
    return size - offset


def _parses(raw: bytes) -> bool:
    try:
        json.loads(raw)
    except ValueError:
        return False
    return True


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every whole record in ``path`` (none if it does not exist); a torn last line is skipped."""
    if not path.is_file():
        return []
    records: list[dict[str, Any]] = []
    rows = list(_lines(path))
    for number, _, raw in rows:
        if not raw.strip():
            continue
        try:
            records.append(json.loads(raw))
        except ValueError:
            if number == len(rows):  # a torn last line from a crash
                break
            raise CorruptFile(f"{path}:{number} is not valid JSON") from None
        if not raw.endswith(b"\n"):  # whole JSON but the newline never made it to disk
            records.pop()
    return records


class AppendWriter:
    """Appends records to a JSONL file, one whole synced line each. Takes the file's lock
    first (:class:`FileInUse` if another writer has it), then repairs a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        created = not path.exists()
        self._handle: IO[bytes] = open(path, "ab")  # noqa: SIM115  (closed in close())
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise FileInUse(f"{path} is being written by another process") from None
        if created:
            sync_directory(path.parent)
        repair(path)

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n"
        self._handle.write(line)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()  # and with it the lock

    def __enter__(self) -> AppendWriter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a synced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_directory(path.parent)
