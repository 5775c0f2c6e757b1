"""Running a job in this process, or in local worker processes that build their agent once.

The pool watches its workers: each worker process has a pipe of its own and holds one task
(``job.concurrency`` items) at a time, and the parent waits on both the pipes and the
processes' sentinels, so a worker that dies (the OOM killer, a native crash, ``kill -9``) is
seen at once, by pid and by the items it held. Those items run again, one by one, on a fresh
worker; an item whose worker dies again is marked lost, the other items run on, and the run
then ends with :class:`WorkerDied` naming both the items and the deaths.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from itertools import islice
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from vpagent.pool.job import Job, run_threads

if TYPE_CHECKING:  # workers import no more than their job needs
    from vpagent.agent import Agent

log = logging.getLogger(__name__)

RETRIES = 1  # times an item whose worker died runs again, alone, on a fresh worker
STOP_SECONDS = 10.0  # how long finished workers get to close their agents


class AgentBuildFailed(RuntimeError):
    """A worker could not build its agent (bad configuration, missing model)."""


class WorkerFailed(RuntimeError):
    """A worker's task raised (``job.work`` must return a record naming what went wrong)."""


class WorkerDied(RuntimeError):
    """Worker processes died while running some items; the other items' records are kept."""


def _serve(conn: Connection, job: Job) -> None:
    """A worker process: build the agent once, then run each task sent until ``None``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        agent = job.factory()
    except Exception as error:  # reported to the parent with the first task
        conn.send(("build", f"{type(error).__name__}: {error}"))
        return
    try:
        while (items := conn.recv()) is not None:
            try:
                lines = [record.model_dump_json() for record in run_threads(agent, job, items)]
            except Exception as error:
                conn.send(("work", f"{type(error).__name__}: {error}"))
                return
            conn.send(("done", lines))
    finally:
        agent.close()


@dataclass
class _Worker:
    process: SpawnProcess
    conn: Connection
    task: tuple[Any, ...] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid or 0

    def death(self) -> str:
        """How the process ended, e.g. ``worker process 4242 killed by SIGKILL``."""
        self.process.join(1)
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"worker process {self.pid} killed by {signal.Signals(-code).name}"
        return f"worker process {self.pid} exited with status {code}"


class _Pool:
    """Worker processes, each holding at most one task."""

    def __init__(self, job: Job, size: int) -> None:
        self.job = job
        self.context = multiprocessing.get_context("spawn")
        self.workers = [self._spawn() for _ in range(size)]

    def _spawn(self) -> _Worker:
        mine, theirs = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(theirs, self.job), daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, mine)

    def replace(self, worker: _Worker) -> _Worker:
        worker.conn.close()
        fresh = self._spawn()
        self.workers[self.workers.index(worker)] = fresh
        return fresh

    def busy(self) -> list[_Worker]:
        return [worker for worker in self.workers if worker.task is not None]

    def stop(self, *, at_once: bool) -> None:
        """Tell idle workers to close their agents and exit; ``at_once`` kills them all."""
        for worker in self.workers:
            if not at_once and worker.process.is_alive():
                with suppress(OSError):  # it died meanwhile
                    worker.conn.send(None)
        for worker in self.workers:
            if at_once:
                worker.process.terminate()
            worker.process.join(STOP_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


def _chunks(items: Sequence[Any], size: int) -> Iterator[tuple[Any, ...]]:
    source = iter(items)
    while chunk := tuple(islice(source, size)):
        yield chunk


def run_in_process(
    items: Sequence[Any], job: Job, agent: Agent | None = None
) -> Iterator[BaseModel]:
    """Records made in this process (``--workers 0``), as they finish: on ``agent`` (the
    caller's, left open), else on one the job's factory builds (closed at the end)."""
    if agent is not None:
        yield from run_threads(agent, job, items)
        return
    with job.factory() as built:
        yield from run_threads(built, job, items)


def run_in_pool(items: Sequence[Any], job: Job, workers: int) -> Iterator[BaseModel]:
    """Records made in ``workers`` spawned processes, as they finish.

    Each task is ``job.concurrency`` items, run on the worker's agent at once. The caller is
    the only writer. Closing the iterator early (Ctrl-C, an error in the caller) terminates the
    workers at once; items in flight are simply run again on the next run. A worker that dies
    is replaced (see the module docstring); :class:`WorkerDied` at the end names what was lost.
    """
    pending = deque(_chunks(items, max(1, job.concurrency)))
    pool = _Pool(job, min(workers, len(pending)))
    deaths: Counter[str] = Counter()  # item id -> times its worker died
    lost: dict[str, str] = {}  # item id -> the last death that took it
    finished = False
    try:
        for worker in pool.workers:
            _give(worker, pending)
        while busy := pool.busy():
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for worker in busy:
                if worker.conn in ready or worker.conn.poll():
                    lines = _receive(worker)
                    if lines is not None:
                        worker.task = None
                        yield from (job.record_type.model_validate_json(line) for line in lines)
                        _give(worker, pending)
                        continue
                elif worker.process.sentinel not in ready:
                    continue
                _died(worker, job, pending, deaths, lost)
                _give(pool.replace(worker), pending)
        finished = True
    finally:
        pool.stop(at_once=not finished)
    if lost:
        names = "; ".join(f"{item_id} ({death})" for item_id, death in lost.items())
        raise WorkerDied(
            f"{len(lost)} item(s) lost: a worker process died each time it ran them: {names}. "
            "The other records are kept; --resume runs only what is missing."
        )


def _give(worker: _Worker, pending: deque[tuple[Any, ...]]) -> None:
    """Send ``worker`` the next task, if any (a dead worker is found by its sentinel)."""
    if not pending:
        return
    worker.task = pending.popleft()
    with suppress(OSError):  # it died: its sentinel fires and the task is retried
        worker.conn.send(worker.task)


def _receive(worker: _Worker) -> list[str] | None:
    """The task's record lines; None when the worker died before it sent them."""
    try:
        kind, payload = worker.conn.recv()
    except (EOFError, OSError):
        return None
    if kind == "build":
        raise AgentBuildFailed(f"a worker could not build its agent: {payload}")
    if kind == "work":
        raise WorkerFailed(f"worker process {worker.pid} failed: {payload}")
    return list(payload)


def _died(
    worker: _Worker,
    job: Job,
    pending: deque[tuple[Any, ...]],
    deaths: Counter[str],
    lost: dict[str, str],
) -> None:
    """Requeue the dead worker's items one by one, or mark those that died too often."""
    death = worker.death()
    task = worker.task or ()
    ids = [str(getattr(item, "id", item)) for item in task]
    log.warning("%s while running %s", death, ", ".join(ids) or "no item")
    for item, item_id in zip(task, ids, strict=True):
        deaths[item_id] += 1
        if deaths[item_id] > RETRIES:
            lost[item_id] = death
        else:
            pending.appendleft((item,))
    worker.task = None
