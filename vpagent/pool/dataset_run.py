"""`run_items`: a job over a dataset into one append-only results file, resumably.

The file starts with a :class:`RunHeader` line and holds one whole, fsynced JSON line per
finished item, written by this process only (it holds the file's lock: a second run writing
the same file is refused). A rerun with ``resume`` skips the ids already in
the file (for an id written twice, its last record counts); a file made with another dataset
or other settings is refused, naming the difference. Killing the process at any moment loses
at most the items in flight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vpagent.agent import Agent
from vpagent.pool.header import RunHeader, split_header
from vpagent.pool.job import Job
from vpagent.pool.jsonl import AppendWriter, FileInUse, read_records


class RunRefused(ValueError):
    """The run cannot start: repeated ids, an existing file, or a file from another run."""


@dataclass
class Backend:
    """Where the work runs: ``workers`` = 0 in this process (on ``agent`` if given: the
    caller's, left open), else that many processes (or Ray actors with ``use_ray``: a private
    Ray on loopback, or the cluster at ``ray_address``)."""

    workers: int = 0
    use_ray: bool = False
    ray_address: str | None = None
    agent: Agent | None = None


@dataclass
class Finished:
    """Every record of the run's items in the file, in item order, and what this run did."""

    records: list[Any] = field(default_factory=list)
    skipped: int = 0  # finished by an earlier run
    ran: int = 0  # finished by this run


def read_run(
    path: Path, record_type: type[BaseModel], id_field: str = "id"
) -> tuple[RunHeader | None, dict[str, Any]]:
    """A results file's header and its records by id (for an id written twice, the last)."""
    return _parse(read_records(path), record_type, id_field)


def _parse(
    rows: list[dict[str, Any]], record_type: type[BaseModel], id_field: str
) -> tuple[RunHeader | None, dict[str, Any]]:
    header, rows = split_header(rows)
    latest: dict[str, Any] = {}
    for row in rows:
        record = record_type.model_validate(row)
        key = str(getattr(record, id_field))
        latest.pop(key, None)
        latest[key] = record
    return header, latest


def _unique(items: Sequence[Any]) -> None:
    counts = Counter(item.id for item in items)
    repeated = [item_id for item_id, n in counts.items() if n > 1]
    if repeated:
        raise RunRefused(f"item ids must be unique; repeated: {', '.join(repeated[:5])}")


def _previous(out: Path, job: Job, header: RunHeader, resume: bool) -> dict[str, Any] | None:
    """The records already in ``out`` (None: a new file); refuses a file it must not extend."""
    rows = read_records(out)
    if not rows:  # no file, an empty one, or a torn first line
        return None
    if not resume:
        raise RunRefused(
            f"{out} exists: pass --resume to continue that run, or choose another --out"
        )
    found, records = _parse(rows, job.record_type, job.id_field)
    if found is None:
        raise RunRefused(f"{out} has no vpagent run header: it was not written by this command")
    differences = found.differences(header)
    if differences:
        raise RunRefused(
            f"{out} was made by another run (settings {found.settings_digest}, this run "
            f"{header.settings_digest}): " + "; ".join(differences[:8])
        )
    return records


def run_items(
    items: Sequence[Any],
    job: Job,
    out: Path | None,
    header: RunHeader,
    *,
    backend: Backend | None = None,
    resume: bool = False,
    redo: Callable[[Any], bool] | None = None,
    describe: Callable[[Any], str] | None = None,
    label: str = "running",
    progress: bool = True,
) -> Finished:
    """Run ``job`` on every item not yet in ``out`` and append each record as it finishes.

    ``redo(record)`` marks earlier records to run again (their new record supersedes them);
    ``describe(record)`` is called with each new record and gives the progress bar's live
    text (e.g. the accuracy so far). ``out`` None keeps the records in memory only.
    """
    backend = backend or Backend()
    _unique(items)
    writer = _writer(out)  # locked before it is read: a second writer is refused here
    with writer or nullcontext():
        previous = _previous(out, job, header, resume) if out is not None else None
        if writer is not None and previous is None:
            writer.write(header.line())
        return _run(items, job, writer, previous, backend, redo, describe, label, progress)


def _writer(out: Path | None) -> AppendWriter | None:
    if out is None:
        return None
    try:
        return AppendWriter(out)
    except FileInUse:
        raise RunRefused(
            f"{out} is being written by another run: wait for it to end (or stop it), then --resume"
        ) from None


def _run(
    items: Sequence[Any],
    job: Job,
    writer: AppendWriter | None,
    previous: dict[str, Any] | None,
    backend: Backend,
    redo: Callable[[Any], bool] | None,
    describe: Callable[[Any], str] | None,
    label: str,
    progress: bool,
) -> Finished:
    done = {k: record for k, record in (previous or {}).items() if not (redo and redo(record))}
    pending = [item for item in items if item.id not in done]
    new: dict[str, Any] = {}
    records = _records(pending, job, backend)
    with (
        _Bar(label, len(items), len(items) - len(pending), progress) as bar,
        closing(records),  # the workers stop at once on Ctrl-C or an error
    ):
        for record in records:
            if writer is not None:
                writer.write(record.model_dump(mode="json"))
            new[job.record_id(record)] = record
            bar.advance(describe(record) if describe else "")
    merged = {**done, **new}
    ordered = [merged[item.id] for item in items if item.id in merged]
    return Finished(records=ordered, skipped=len(items) - len(pending), ran=len(new))


def _records(items: Sequence[Any], job: Job, backend: Backend) -> Iterator[BaseModel]:
    if not items:
        return
    if backend.use_ray:
        from vpagent.pool.on_ray import run_on_ray

        yield from run_on_ray(items, job, max(backend.workers, 1), backend.ray_address)
    elif backend.workers == 0:
        from vpagent.pool.local import run_in_process

        yield from run_in_process(items, job, backend.agent)
    else:
        from vpagent.pool.local import run_in_pool

        yield from run_in_pool(items, job, min(backend.workers, len(items)))


class _Rate(ProgressColumn):
    """Items per minute."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed * 60:.1f}/min" if speed else "-/min")


class _Bar:
    """A rich progress bar: done of total, rate, elapsed, ETA and the caller's live text."""

    def __init__(self, label: str, total: int, completed: int, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[live]}"),
            disable=not enabled,
        )
        self.task = self.progress.add_task(label, total=total, completed=completed, live="")

    def advance(self, live: str) -> None:
        self.progress.update(self.task, advance=1, live=live)

    def __enter__(self) -> _Bar:
        self.progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.progress.stop()
