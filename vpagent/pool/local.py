"""Running a job in this process, or in local worker processes that build their agent once."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Iterator, Sequence
from itertools import islice
from multiprocessing.util import Finalize
from typing import Any

from pydantic import BaseModel

from vpagent.agent import Agent
from vpagent.pool.job import Job, run_threads

_agent: Agent | None = None
_agent_error: str | None = None
_job: Job | None = None


class AgentBuildFailed(RuntimeError):
    """A worker could not build its agent (bad configuration, missing model)."""


def _start_worker(job: Job) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; build the agent once."""
    global _agent, _agent_error, _job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _job = job
    try:
        _agent = job.factory()
    except Exception as error:  # reported by the first task, so the pool does not respawn
        _agent_error = f"{type(error).__name__}: {error}"
        return
    Finalize(_agent, _agent.close, exitpriority=10)


def _run_in_worker(items: tuple[Any, ...]) -> list[str]:
    if _agent is None or _job is None:
        raise AgentBuildFailed(f"a worker could not build its agent: {_agent_error}")
    return [record.model_dump_json() for record in run_threads(_agent, _job, items)]


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
    workers at once; items in flight are simply run again on the next run.
    """
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker, initargs=(job,))
    finished = False
    try:
        tasks = _chunks(items, max(1, job.concurrency))
        for lines in pool.imap_unordered(_run_in_worker, tasks, chunksize=1):
            for line in lines:
                yield job.record_type.model_validate_json(line)
        finished = True
    finally:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
