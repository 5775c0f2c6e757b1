"""`vpagent distill traces`: verified program traces for a labelled dataset, resumably.

Per item, the temperature-0 program and then up to k-1 sampled ones are planned and run in the
sandbox (each with the agent's run-time repairs); every program run is recorded, and sampling
stops at the first program whose answer matches the label. Items go through the shared runner
(:func:`vpagent.pool.dataset_run.run_items`) into ``DIR/items.jsonl``: its first line records the
dataset, k and the teacher's settings; a rerun skips finished items and refuses other
settings, and an item in flight when a run dies is traced again from scratch, never duplicated.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vpagent.distill.trace_item import trace_item
from vpagent.distill.trace_records import ITEMS_FILE, WORKER_ERROR, ItemRecord
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.run_header import run_header
from vpagent.pool.dataset_run import Backend, RunRefused, read_run, run_items
from vpagent.pool.header import RunHeader
from vpagent.pool.job import AgentFactory, Job

TraceRunError = RunRefused  # the run cannot start: repeated ids, or a folder of another run


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
    return list(read_run(out_dir / ITEMS_FILE, ItemRecord, "item_id")[1].values())


def load_run_info(out_dir: Path) -> dict[str, Any]:
    """How the traces were made: dataset, k, teacher and start time (from the file's header)."""
    header = read_run(out_dir / ITEMS_FILE, ItemRecord, "item_id")[0]
    if header is None:
        return {}
    return {"dataset": header.dataset.path, "started": header.started, **header.options}


def generate_traces(
    items: Sequence[EvalItem],
    out_dir: Path,
    factory: AgentFactory,
    *,
    k: int = 5,
    backend: Backend | None = None,
    concurrency: int = 1,
    teacher: dict[str, Any] | None = None,
    header: RunHeader | None = None,
    progress: bool = True,
    retry_errors: bool = False,
) -> TraceSummary:
    """Trace every item not yet finished in ``out_dir``; return counts over the whole folder.

    ``backend`` says where (default: this process), ``concurrency`` how many items each agent
    has in flight (``llm.parallel``). ``header`` names the dataset and settings
    (:func:`vpagent.evaluation.run_header.run_header`; default: from the items alone); k and
    ``teacher`` are added to it. ``retry_errors`` traces again the items rejected with
    ``worker_error`` (a timeout or crash of a backend, not a property of the item); their new
    record is appended and supersedes the old one.
    """
    if k < 1:
        raise TraceRunError("k must be at least 1")
    header = header or run_header("traces", items)
    header = header.model_copy(update={"options": {"k": k, "teacher": teacher or {}}})
    this_run = TraceSummary(total=len(items))  # the progress bar's live coverage

    def describe(record: ItemRecord) -> str:
        this_run.add(record)
        verified, finished = this_run.verified, this_run.finished
        return f"this run verified {verified}/{finished} ({this_run.coverage:.0%})"

    finished = run_items(
        items,
        Job(factory, partial(trace_item, k=k), ItemRecord, "item_id", concurrency),
        out_dir / ITEMS_FILE,
        header,
        backend=backend,
        resume=True,
        redo=(lambda record: record.reason == WORKER_ERROR) if retry_errors else None,
        describe=describe,
        label="tracing",
        progress=progress,
    )
    summary = TraceSummary(total=len(items), skipped=finished.skipped, traced=finished.ran)
    for record in finished.records:
        summary.add(record)
    return summary
