"""Tracing items on Ray: a `ray.data` pipeline whose tracing stage is an actor pool.

Each actor builds its agent once (planner LLM, tool server, sandbox) and traces one item per
batch; the driver iterates the results as they stream in and stays the only writer, so the
output is the same resumable ``items.jsonl`` as the local path.

Ray is started loopback-only: no dashboard, no usage stats, no auth, and HOME pointing at a
folder whose ``ray_bootstrap_config.yaml`` says ``provider: {type: local}``, so Ray does not
probe cloud metadata addresses on start.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from distill.local_pool import AgentFactory
from distill.trace_item import trace_item
from distill.trace_records import ItemRecord
from vpagent.evaluation.datasets import EvalItem
from vpagent.offline_env import cache_root

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
INSTALL_HINT = "Ray is not installed: pip install 'vpagent[scale]'"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise RuntimeError(INSTALL_HINT) from None
    return ray


@contextmanager
def _local_home() -> Iterator[None]:
    """HOME -> a folder holding ``ray_bootstrap_config.yaml`` while Ray starts its processes.

    The caches HOME would otherwise locate are pinned first, so workers still find models.
    """
    previous = os.environ.get("HOME")
    os.environ.setdefault("VPAGENT_CACHE_DIR", str(cache_root()))
    if previous:
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(previous) / ".cache"))
    with tempfile.TemporaryDirectory(prefix="vpagent-ray-home-") as home:
        Path(home, "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
        os.environ["HOME"] = home
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("HOME", None)
            else:
                os.environ["HOME"] = previous


def start_local_ray(num_cpus: int | None = None) -> None:
    """Start a private, loopback-only Ray on this machine (no-op if Ray is already running)."""
    ray = _import_ray()
    if ray.is_initialized():
        return
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    with _local_home():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
        )


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
    items: Sequence[EvalItem], factory: AgentFactory, k: int, workers: int
) -> Iterator[ItemRecord]:
    """Trace items on Ray with ``workers`` actors; records stream back as they finish."""
    ray = _import_ray()
    start_local_ray()
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
