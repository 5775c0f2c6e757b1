"""What every worker needs to do its share of a run: an agent to build and the work per item."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from vpagent.agent import Agent

AgentFactory = Callable[[], "Agent"]
Work = Callable[["Agent", Any], BaseModel]


@dataclass(frozen=True)
class Job:
    """The work of a run; picklable when its parts are, so processes and Ray actors get it.

    ``work(agent, item)`` must not raise for a bad item: it returns a record naming what went
    wrong. ``concurrency`` items are in flight per agent at once (threads sharing the agent; the
    embedded LLM serves them in parallel with ``llm.parallel`` slots).
    """

    factory: AgentFactory
    work: Work
    record_type: type[BaseModel]
    id_field: str = "id"
    concurrency: int = 1

    def record_id(self, record: BaseModel) -> str:
        return str(getattr(record, self.id_field))


def run_threads(agent: Agent, job: Job, items: Iterable[Any]) -> Iterator[BaseModel]:
    """Records for ``items`` as they finish, at most ``job.concurrency`` in flight.

    Closing the iterator early cancels the items not started; those in flight finish first.
    """
    if job.concurrency <= 1:
        for item in items:
            yield job.work(agent, item)
        return
    source = iter(items)
    with ThreadPoolExecutor(job.concurrency, thread_name_prefix="vpagent-item") as threads:
        running: set[Future[BaseModel]] = set()
        try:
            for item in source:
                running.add(threads.submit(job.work, agent, item))
                if len(running) >= job.concurrency:
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in done)
            for future in _as_finished(running):
                yield future.result()
        finally:
            threads.shutdown(wait=True, cancel_futures=True)


def _as_finished(running: set[Future[BaseModel]]) -> Iterator[Future[BaseModel]]:
    while running:
        done, running = wait(running, return_when=FIRST_COMPLETED)
        yield from done
