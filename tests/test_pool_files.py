"""Results files a power loss or a second run cannot damage (issue 35): the directory is synced
after a file is created or renamed into it, and one writer at a time holds the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import BaseModel

from vpagent.pool.dataset_run import RunRefused, run_items
from vpagent.pool.header import DatasetIdentity, RunHeader
from vpagent.pool.job import Job
from vpagent.pool.jsonl import AppendWriter, FileInUse, write_atomic


class Item(BaseModel):
    id: str


class NoAgent:
    def __enter__(self) -> NoAgent:
        return self

    def __exit__(self, *_exc: object) -> None:
        pass


def _echo(_agent: NoAgent, item: Item) -> Item:
    return item


HEADER = RunHeader(
    kind="test", dataset=DatasetIdentity(path="-", layout="-", items=2, fingerprint="-"),
    settings={},
)  # fmt: skip


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What each ``os.fsync`` synced: "dir" or "file"."""
    seen: list[str] = []
    real = os.fsync

    def recording(fd: int) -> None:
        seen.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return seen


def test_a_new_results_file_has_its_directory_synced(tmp_path: Path, synced: list[str]) -> None:
    with AppendWriter(tmp_path / "new.jsonl") as writer:
        writer.write({"id": "a"})
    assert synced[0] == "dir" and "file" in synced
    synced.clear()
    with AppendWriter(tmp_path / "new.jsonl") as writer:  # appending to it: no new name
        writer.write({"id": "b"})
    assert synced == ["file"]


def test_an_atomic_write_syncs_the_directory_after_the_rename(
    tmp_path: Path, synced: list[str]
) -> None:
    write_atomic(tmp_path / "summary.json", "{}")
    assert synced == ["file", "dir"]
    assert (tmp_path / "summary.json").read_text() == "{}"


def test_a_second_writer_is_refused_while_the_first_holds_the_file(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    with AppendWriter(path) as first:
        first.write({"id": "a"})
        with open(path, "ab") as raw:
            raw.write(b'{"id": "b", "torn')  # the first writer's line in progress
        with pytest.raises(FileInUse, match="being written by another process"):
            AppendWriter(path)
        assert path.read_bytes().endswith(b'"torn')  # the refused writer repaired nothing
    with AppendWriter(path) as second:  # once the first has closed
        second.write({"id": "c"})
    assert path.read_text().splitlines() == ['{"id": "a"}', '{"id": "c"}']


def test_a_second_resume_run_on_the_same_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    job = Job(NoAgent, _echo, Item)  # type: ignore[arg-type]
    items = [Item(id="a"), Item(id="b")]
    run_items(items[:1], job, out, HEADER, progress=False)
    with (
        AppendWriter(out),  # a first --resume run still writing
        pytest.raises(RunRefused, match="being written by another run"),
    ):
        run_items(items, job, out, HEADER, resume=True, progress=False)
    finished = run_items(items, job, out, HEADER, resume=True, progress=False)
    assert (finished.skipped, finished.ran) == (1, 1)
