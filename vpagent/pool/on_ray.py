"""Running a job on Ray: a `ray.data` pipeline whose work stage is an actor pool.

Each actor builds its agent once and runs ``job.concurrency`` items per batch; the driver
iterates the records as they stream in and stays the only writer, so the results file is the
same as on the local path. Ray is started by :func:`vpagent.ray_cluster.start_ray`: a private
Ray on loopback with a token of its own, or the cluster named with ``--ray-address``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel

from vpagent.pool.job import Job, run_threads
from vpagent.ray_cluster import start_ray


class _WorkActor:
    """One agent per actor; runs the items of each batch."""

    def __init__(self, job: Job, item_type: type[BaseModel]) -> None:
        self.job = job
        self.item_type = item_type
        self.agent = job.factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        items = [self.item_type.model_validate_json(str(raw)) for raw in batch["item"]]
        records = run_threads(self.agent, self.job, items)
        return {"record": [record.model_dump_json() for record in records]}


def run_on_ray(
    items: Sequence[BaseModel], job: Job, workers: int, address: str | None = None
) -> Iterator[BaseModel]:
    """Records made by ``workers`` Ray actors, as they finish.

    ``address``: a Ray cluster to join; None starts a private Ray on loopback.
    """
    start_ray(address)
    import ray
    import ray.data

    if not items:
        return
    dataset = ray.data.from_items([{"item": item.model_dump_json()} for item in items])
    records = dataset.map_batches(
        _WorkActor,
        fn_constructor_kwargs={"job": job, "item_type": type(items[0])},
        batch_size=max(1, job.concurrency),
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=1,
    )
    for row in records.iter_rows():
        yield job.record_type.model_validate_json(row["record"])
