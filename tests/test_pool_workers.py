"""Worker processes that die mid-run (issue 35, defect 3): the run never hangs; the dead
worker is named, its items run again on a fresh worker (or are marked lost when they kill it
each time) and every other record is kept in the results file."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from pydantic import BaseModel

from vpagent.pool.dataset_run import Backend, read_run, run_items
from vpagent.pool.header import DatasetIdentity, RunHeader
from vpagent.pool.job import Job
from vpagent.pool.local import WorkerDied


class Item(BaseModel):
    id: str


class Record(BaseModel):
    id: str
    pid: int


class NoAgent:
    """The jobs here need no agent: this one only closes."""

    def close(self) -> None:
        pass


def _work(folder: Path, _agent: NoAgent, item: Item) -> Record:
    """Announce the item (``started-<id>-<pid>``); ``slow`` waits for the test's ``killed``
    mark; ``boom`` kills its own worker, every time."""
    (folder / f"started-{item.id}-{os.getpid()}").touch()
    if item.id == "boom":
        os.kill(os.getpid(), signal.SIGKILL)
    if item.id == "slow":
        deadline = time.monotonic() + 60
        while not (folder / "killed").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    return Record(id=item.id, pid=os.getpid())


def _run(folder: Path, ids: list[str]) -> list[Record]:
    job = Job(NoAgent, partial(_work, folder), Record)
    header = RunHeader(
        kind="test",
        dataset=DatasetIdentity(path="-", layout="-", items=len(ids), fingerprint="-"),
        settings={},
    )
    finished = run_items([Item(id=i) for i in ids], job, folder / "out.jsonl", header,
                         backend=Backend(workers=2), progress=False)  # fmt: skip
    return finished.records


def _kill_the_worker_of(folder: Path, item_id: str, killed: list[int]) -> threading.Thread:
    def kill() -> None:
        deadline = time.monotonic() + 120
        while not (found := list(folder.glob(f"started-{item_id}-*"))):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        (folder / "killed").touch()  # its retry will not wait
        killed.append(int(found[0].name.rsplit("-", 1)[1]))
        os.kill(killed[0], signal.SIGKILL)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(120)  # before the fix, the run hung here for ever
def test_a_worker_killed_mid_item_is_named_and_its_item_runs_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ids = ["a", "b", "slow", "c", "d"]
    killed: list[int] = []
    killer = _kill_the_worker_of(tmp_path, "slow", killed)
    with caplog.at_level(logging.WARNING, logger="vpagent.pool.local"):
        records = _run(tmp_path, ids)
    killer.join(10)
    assert [r.id for r in records] == ids
    (killed_pid,) = killed
    retried = next(r for r in records if r.id == "slow")
    assert retried.pid != killed_pid  # answered by the fresh worker
    assert f"worker process {killed_pid} killed by SIGKILL while running slow" in caplog.text
    assert sorted(read_run(tmp_path / "out.jsonl", Record)[1]) == sorted(ids)


@pytest.mark.timeout(120)
def test_an_item_that_kills_its_worker_each_time_is_lost_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    with pytest.raises(WorkerDied, match=r"1 item\(s\) lost.*boom \(worker process \d+ killed "
                       r"by SIGKILL\).*--resume"):  # fmt: skip
        _run(tmp_path, ["a", "boom", "b", "c"])
    assert len(list(tmp_path.glob("started-boom-*"))) == 2  # tried, then tried once more
    assert sorted(read_run(tmp_path / "out.jsonl", Record)[1]) == ["a", "b", "c"]
