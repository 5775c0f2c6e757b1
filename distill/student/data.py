"""The exported SFT records a student trains on, as a torch dataset.

An export folder holds ``train.jsonl`` / ``validation.jsonl`` (one :class:`SFTRecord` per line,
``image`` relative to the folder) and ``images/``. Training reads ``train.jsonl`` only: its
early-stopping loss comes from training photos held out of training (:func:`hold_out_photos`).
Every record's image is checked before training starts, so a dataset without its images fails
at once with the first missing path.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from torch.utils.data import Dataset

from vpagent.evaluation.datasets.jsonl import numbered_lines
from vpagent.student.base import StudentError
from vpagent.student.records import SFTRecord, Task

TASKS: tuple[Task, ...] = ("rationale", "answer")

log = logging.getLogger(__name__)


def records_file(data: Path, split: str) -> Path:
    """``data`` itself when it is a JSONL file, else ``data/<split>.jsonl``."""
    path = data if data.is_file() else data / f"{split}.jsonl"
    if not path.is_file():
        raise StudentError(
            f"no {split} records at {path}: --data takes an export folder (from "
            "`vpagent distill export`) or an SFT records JSONL file"
        )
    return path


def read_records(path: Path) -> list[SFTRecord]:
    """The SFT records of a JSONL file; a bad line is an error naming it."""
    records = []
    for number, line in numbered_lines(path):
        try:
            records.append(SFTRecord.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError) as error:
            raise StudentError(f"{path}:{number}: not an SFT record: {error}") from None
    if not records:
        raise StudentError(f"{path} holds no records")
    return records


def check_images(records: Iterable[SFTRecord], root: Path) -> None:
    """Every record's image exists under ``root``; else an error naming the missing ones."""
    missing = sorted({r.image for r in records if not (root / r.image).is_file()})
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise StudentError(
            f"{len(missing)} image(s) of the dataset are missing under {root}: {shown}"
        )


def load_split(
    data: Path, split: str, tasks: Iterable[str] = TASKS
) -> tuple[list[SFTRecord], Path]:
    """The records of ``split`` with the given tasks, their images checked; and their root."""
    path = records_file(data, split)
    wanted = set(tasks)
    records = [r for r in read_records(path) if r.task in wanted]
    if not records:
        raise StudentError(f"{path} has no records of task(s) {', '.join(sorted(wanted))}")
    check_images(records, path.parent)
    return records, path.parent


def subset(records: list[SFTRecord], limit: int | None, seed: int = 0) -> list[SFTRecord]:
    """At most ``limit`` records, a seeded random choice in their original order (the same
    records for every training seed, so seeds vary the run, not the data)."""
    if limit is None or len(records) <= limit:
        return records
    import random

    chosen = set(random.Random(seed).sample(range(len(records)), limit))
    return [record for index, record in enumerate(records) if index in chosen]


def photo_of(record: SFTRecord) -> str:
    """The photo a record shows: its ``photo`` key (an augmented copy's is its source photo's),
    else its image file."""
    return record.photo or record.image


def hold_out_photos(
    records: list[SFTRecord], min_records: int
) -> tuple[list[SFTRecord], list[SFTRecord]]:
    """``(training, held_out)``: whole photos held out of training until they hold at least
    ``min_records`` records. Early stopping reads their loss: never the export's validation
    split, which `distill eval` scores. The photos come in the order of their names' sha256, so
    the choice is the same for every training seed and record subset."""
    if any(record.photo is None for record in records):
        log.warning(
            "some training records carry no photo key (exported before it was written): "
            "held-out photos are grouped by image file, so an augmented copy of a held-out "
            "photo may stay in training; re-run `vpagent distill export` to group them"
        )
    sizes = Counter(photo_of(r) for r in records)
    chosen: set[str] = set()
    held = 0
    for photo in sorted(sizes, key=lambda name: hashlib.sha256(name.encode()).hexdigest()):
        if held >= min_records:
            break
        chosen.add(photo)
        held += sizes[photo]
    training = [r for r in records if photo_of(r) not in chosen]
    if not training:
        raise StudentError(
            f"holding out {min_records} records leaves no photo to train on ({len(sizes)} "
            "photo(s) in all): ask for fewer held-out records"
        )
    return training, [r for r in records if photo_of(r) in chosen]


def describe(records: list[SFTRecord]) -> dict[str, Any]:
    """Counts per task and the number of distinct images and items."""
    return {
        "records": len(records),
        "tasks": dict(Counter(r.task for r in records)),
        "items": len({r.item_id for r in records}),
        "images": len({r.image for r in records}),
    }


class SFTDataset(Dataset):
    """Records -> training examples through a student (image read and encoded on access)."""

    def __init__(self, records: list[SFTRecord], root: Path, student: Any) -> None:
        self.records = records
        self.root = root
        self.student = student

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        try:
            return self.student.training_example(
                self.root / record.image, record.prompt, record.target
            )
        except ValueError as error:  # an unreadable image
            raise StudentError(f"record {record.id}: {error}") from error
