"""Tracing items on Ray: a `ray.data` pipeline whose tracing stage is an actor pool.

Each actor builds its agent once (planner LLM, tool server, sandbox) and traces one item per
batch; the driver iterates the results as they stream in and stays the only writer, so the
output is the same resumable ``items.jsonl`` as the local path.

Ray is started by :func:`vpagent.ray_cluster.start_ray`: a private Ray on loopback with a
token of its own, or the cluster the user names with ``--ray-address``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from vpagent.distill.local_pool import AgentFactory
from vpagent.distill.trace_item import trace_item
from vpagent.distill.trace_records import ItemRecord
from vpagent.evaluation.datasets import EvalItem
from vpagent.ray_cluster import start_ray


class _TraceActor:
    """One agent per actor; traces the items of each (one-row) batch."""

    def __init__(self, factory: AgentFactory, k: int) -> None:
        self.agent = factory()
        self.k = k

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        records = []
        for raw in batch["item"]:
            item = EvalItem.model_validate_json(str(raw))
            records.append(trace_item(self.agent, item, self.k).model_dump_json())
        return {"record": records}


def trace_on_ray(
    items: Sequence[EvalItem],
    factory: AgentFactory,
    k: int,
    workers: int,
    address: str | None = None,
) -> Iterator[ItemRecord]:
    """Trace items on Ray with ``workers`` actors; records stream back as they finish.

    ``address``: a Ray cluster to join; None starts a private Ray on loopback.
    """
    start_ray(address)
    import ray
    import ray.data

    if not items:
        return
    dataset = ray.data.from_items([{"item": item.model_dump_json()} for item in items])
    traced = dataset.map_batches(
        _TraceActor,
        fn_constructor_kwargs={"factory": factory, "k": k},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for row in traced.iter_rows():
        yield ItemRecord.model_validate_json(row["record"])
