"""`vpagent distill traces`: verified program traces for a labelled dataset, resumably.

Per item, the temperature-0 program and then up to k-1 sampled ones are planned and run in the
sandbox (each with the agent's run-time repairs); every program run is recorded, and sampling
stops at the first program whose answer matches the label. Items are written whole, one JSON
line each, to ``DIR/items.jsonl`` by a single writer: a rerun skips finished items, and an item
in flight when a run dies is traced again from scratch, never duplicated.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vpagent.distill.jsonl import AppendWriter, read_records, write_atomic
from vpagent.distill.local_pool import AgentFactory, trace_in_pool, trace_in_process
from vpagent.distill.trace_records import ITEMS_FILE, RUN_FILE, WORKER_ERROR, ItemRecord
from vpagent.evaluation.datasets import EvalItem


class TraceRunError(ValueError):
    """The run cannot start: duplicate item ids, or a folder made with other settings."""


@dataclass
class TraceSummary:
    """Counts over every finished item in the folder (earlier runs included)."""

    total: int = 0
    skipped: int = 0  # finished by an earlier run
    traced: int = 0  # finished by this run
    verified: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    @property
    def finished(self) -> int:
        return self.verified + sum(self.reasons.values())

    @property
    def coverage(self) -> float:
        return self.verified / self.finished if self.finished else 0.0

    def add(self, record: ItemRecord) -> None:
        if record.status == "verified":
            self.verified += 1
        else:
            self.reasons[record.reason or "unknown"] += 1


def load_item_records(out_dir: Path) -> list[ItemRecord]:
    """The finished items in a traces folder; for an item traced again, its last record."""
    latest: dict[str, ItemRecord] = {}
    for row in read_records(out_dir / ITEMS_FILE):
        record = ItemRecord.model_validate(row)
        latest.pop(record.item_id, None)
        latest[record.item_id] = record
    return list(latest.values())


def load_run_info(out_dir: Path) -> dict[str, Any]:
    """The teacher configuration the traces were made with (``run.json``)."""
    path = out_dir / RUN_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _check_run(out_dir: Path, k: int, teacher: dict[str, Any], dataset: str) -> None:
    """Write ``run.json`` on the first run; refuse to mix settings on a rerun."""
    previous = load_run_info(out_dir)
    if previous and (previous.get("k") != k or previous.get("teacher") != teacher):
        raise TraceRunError(
            f"{out_dir} holds traces made with k={previous.get('k')} and teacher "
            f"{previous.get('teacher')}; use another --out for k={k} and teacher {teacher}"
        )
    if not previous:
        info = {
            "dataset": dataset,
            "k": k,
            "teacher": teacher,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_atomic(out_dir / RUN_FILE, json.dumps(info, indent=2) + "\n")


def _unique(items: Sequence[EvalItem]) -> None:
    counts = Counter(item.id for item in items)
    repeated = [item_id for item_id, n in counts.items() if n > 1]
    if repeated:
        raise TraceRunError(f"item ids must be unique; repeated: {', '.join(repeated[:5])}")


def generate_traces(
    items: Sequence[EvalItem],
    out_dir: Path,
    factory: AgentFactory,
    *,
    k: int = 5,
    workers: int = 1,
    use_ray: bool = False,
    ray_address: str | None = None,
    teacher: dict[str, Any] | None = None,
    dataset: str = "",
    progress: bool = True,
    retry_errors: bool = False,
) -> TraceSummary:
    """Trace every item not yet finished in ``out_dir``; return counts over the whole folder.

    ``workers`` = 0 traces in this process; otherwise that many worker processes (or Ray
    actors with ``use_ray``: a private Ray on loopback, or the cluster at ``ray_address``) each
    build their agent with ``factory``. ``retry_errors``
    traces again the items rejected with ``worker_error`` (a timeout or crash of a backend, not
    a property of the item); their new record is appended and supersedes the old one.
    """
    if k < 1:
        raise TraceRunError("k must be at least 1")
    _unique(items)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_run(out_dir, k, teacher or {}, dataset)
    wanted = {item.id for item in items}
    summary = TraceSummary(total=len(items))
    done: set[str] = set()
    for record in load_item_records(out_dir):
        if record.item_id not in wanted or (retry_errors and record.reason == WORKER_ERROR):
            continue
        done.add(record.item_id)
        summary.add(record)
    summary.skipped = len(done)
    pending = [item for item in items if item.id not in done]
    records = _records(pending, factory, k, workers, use_ray, ray_address)
    # closing(): the workers stop at once on Ctrl-C or an error
    with (
        AppendWriter(out_dir / ITEMS_FILE) as writer,
        _Bar(progress, summary) as bar,
        closing(records),
    ):
        for record in records:
            writer.write(record.model_dump(mode="json"))
            summary.add(record)
            summary.traced += 1
            bar.advance(summary)
    return summary


def _records(
    items: Sequence[EvalItem],
    factory: AgentFactory,
    k: int,
    workers: int,
    use_ray: bool,
    ray_address: str | None,
) -> Iterator[ItemRecord]:
    if not items:
        return
    if use_ray:
        from vpagent.distill.ray_backend import trace_on_ray

        yield from trace_on_ray(items, factory, k, max(workers, 1), ray_address)
    elif workers == 0:
        yield from trace_in_process(items, factory, k)
    else:
        yield from trace_in_pool(items, factory, k, min(workers, len(items)))


class _Bar:
    """A rich progress bar with ETA and live coverage (share of finished items verified)."""

    def __init__(self, enabled: bool, summary: TraceSummary) -> None:
        self.progress = Progress(
            TextColumn("tracing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[coverage]}"),
            disable=not enabled,
        )
        self.task = self.progress.add_task(
            "tracing", total=summary.total, completed=summary.finished, coverage=""
        )
        self.advance(summary, step=0)

    def advance(self, summary: TraceSummary, step: int = 1) -> None:
        coverage = f"verified {summary.verified}/{summary.finished} ({summary.coverage:.0%})"
        self.progress.update(self.task, advance=step, coverage=coverage)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()
