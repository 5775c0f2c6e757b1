"""Tracing items in local worker processes; each process builds its agent once."""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.util import Finalize

from vpagent.agent import Agent
from vpagent.distill.trace_item import trace_item
from vpagent.distill.trace_records import ItemRecord
from vpagent.evaluation.datasets import EvalItem

AgentFactory = Callable[[], Agent]

_agent: Agent | None = None
_agent_error: str | None = None
_k = 1


class AgentBuildFailed(RuntimeError):
    """A worker could not build its agent (bad configuration, missing model)."""


def _start_worker(factory: AgentFactory, k: int) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; build the agent once."""
    global _agent, _agent_error, _k
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _k = k
    try:
        _agent = factory()
    except Exception as error:  # reported by the first task, so the pool does not respawn
        _agent_error = f"{type(error).__name__}: {error}"
        return
    Finalize(_agent, _agent.close, exitpriority=10)


def _trace_in_worker(item: EvalItem) -> str:
    if _agent is None:
        raise AgentBuildFailed(f"a worker could not build its agent: {_agent_error}")
    return trace_item(_agent, item, _k).model_dump_json()


def trace_in_process(
    items: Sequence[EvalItem], factory: AgentFactory, k: int
) -> Iterator[ItemRecord]:
    """Trace items one by one in this process (``--workers 0``)."""
    with factory() as agent:
        for item in items:
            yield trace_item(agent, item, k)


def trace_in_pool(
    items: Sequence[EvalItem], factory: AgentFactory, k: int, workers: int
) -> Iterator[ItemRecord]:
    """Trace items in ``workers`` spawned processes; records come back as they finish.

    The caller is the only writer. Closing the iterator early (Ctrl-C, an error in the caller)
    terminates the workers at once; items in flight are simply traced again on the next run.
    """
    context = multiprocessing.get_context("spawn")
    pool = context.Pool(workers, initializer=_start_worker, initargs=(factory, k))
    finished = False
    try:
        for line in pool.imap_unordered(_trace_in_worker, items, chunksize=1):
            yield ItemRecord.model_validate_json(line)
        finished = True
    finally:
        if finished:
            pool.close()
        else:
            pool.terminate()
        pool.join()
