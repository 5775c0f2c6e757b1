"""`vpagent distill export`: verified traces -> SFT records (JSONL + parquet), split by image.

The export folder is self-contained: images are copied into ``images/`` under content-hashed
names and every ``image`` path is relative to the folder. Each image goes wholly to train or to
validation (a seeded shuffle of the distinct images), so the student is evaluated on images it
never trained on; ``validation_items.jsonl`` lists every labelled item on a validation image
(verified or not) in the eval JSONL format, to compare teacher and student there.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distill.card import build_card, card_markdown
from distill.jsonl import write_atomic
from distill.rationales import load_rationales, rationales, strip_answer, target_answer
from distill.records import SFTRecord
from distill.trace_records import ItemRecord
from distill.traces import load_item_records, load_run_info

SPLITS = ("train", "validation")


class ExportError(ValueError):
    """Nothing to export, or bad options."""


@dataclass
class ExportSummary:
    card: dict[str, Any]
    out_dir: Path


def split_images(hashes: set[str], val_fraction: float, seed: int) -> set[str]:
    """The images (content hashes) that go to validation: a seeded shuffle, deterministic."""
    ordered = sorted(hashes)
    random.Random(seed).shuffle(ordered)
    count = round(len(ordered) * val_fraction)
    if val_fraction > 0 and count == 0 and len(ordered) > 1:
        count = 1
    return set(ordered[:count])


def _copy_image(record: ItemRecord, images: Path) -> str:
    """Copy the item's image into ``images/`` as ``<sha256[:16]><suffix>``; the relative path."""
    source = Path(record.item["image"])
    name = f"{record.image_sha256[:16]}{source.suffix.lower() or '.img'}"  # type: ignore[index]
    target = images / name
    if not target.exists():
        shutil.copyfile(source, target)
    return f"images/{name}"


def _sft_records(record: ItemRecord, image: str, rationale: str) -> list[SFTRecord]:
    """Both tasks for a verified item; ``rationale`` is the full target ending in the answer."""
    answer = target_answer(record)
    common = {
        "item_id": record.item_id,
        "image": image,
        "question": record.question,
        "answer": answer,
        "type": str(record.item.get("type", "all")),
        "rationale": strip_answer(rationale),
        "license": record.item.get("license"),
        "source": record.item.get("source"),
    }
    return [
        SFTRecord(id=f"{record.item_id}:rationale", task="rationale", target=rationale, **common),
        SFTRecord(id=f"{record.item_id}:answer", task="answer", target=answer, **common),
    ]


def _eval_row(record: ItemRecord, image: str) -> dict[str, Any]:
    item = record.item
    row: dict[str, Any] = {
        "id": record.item_id,
        "image": image,
        "question": item["question"],
        "answer": item["answers"][0],
        "type": item.get("type", "all"),
    }
    if item["answers"][1:]:
        row["accept"] = item["answers"][1:]
    for key in ("choices", "license", "source"):
        if item.get(key):
            row[key] = item[key]
    return row


def _write_parquet(rows: list[SFTRecord], path: Path) -> None:
    from datasets import Dataset, Features, Value
    from datasets.utils.logging import (
        disable_progress_bar,
        enable_progress_bar,
        is_progress_bar_enabled,
    )

    names = list(SFTRecord.model_fields)
    features = Features({name: Value("string") for name in names})
    columns = {name: [getattr(row, name) for row in rows] for name in names}
    path.parent.mkdir(parents=True, exist_ok=True)
    shown = is_progress_bar_enabled()
    disable_progress_bar()  # one bar per tiny file is noise
    try:
        Dataset.from_dict(columns, features=features).to_parquet(str(path))
    finally:
        if shown:
            enable_progress_bar()


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def export_dataset(
    traces_dir: Path, out_dir: Path, *, val_fraction: float = 0.2, seed: int = 0
) -> ExportSummary:
    """Write ``train``/``validation`` JSONL + parquet, images, validation items and data card."""
    if not 0 <= val_fraction < 1:
        raise ExportError("--val-fraction must be at least 0 and below 1")
    records = load_item_records(traces_dir)
    if not records:
        raise ExportError(f"{traces_dir} holds no traced items (run `vpagent distill traces`)")
    stored = load_rationales(traces_dir)
    kinds: Counter[str] = Counter()
    texts: dict[str, str] = {}
    for record, text, kind in rationales([r for r in records if r.item_id not in stored]):
        texts[record.item_id] = text
        kinds[kind] += 1
    for record in records:
        if record.item_id in stored and record.status == "verified":
            texts[record.item_id] = stored[record.item_id]
            kinds["stored"] += 1
    with_image = [r for r in records if r.image_sha256]
    validation = split_images({r.image_sha256 for r in with_image}, val_fraction, seed)  # type: ignore[misc]
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[SFTRecord]] = {name: [] for name in SPLITS}
    split_of_item: dict[str, str] = {}
    split_images_seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    eval_rows: list[dict[str, Any]] = []
    for record in with_image:
        split = "validation" if record.image_sha256 in validation else "train"
        split_of_item[record.item_id] = split
        image = _copy_image(record, images)
        split_images_seen[split].add(image)
        if split == "validation":
            eval_rows.append(_eval_row(record, image))
        if record.status == "verified":
            splits[split].extend(_sft_records(record, image, texts[record.item_id]))
    for name, rows in splits.items():
        write_atomic(out_dir / f"{name}.jsonl", _jsonl([r.model_dump() for r in rows]))
        parquet = out_dir / "data" / f"{name}.parquet"
        if rows:
            _write_parquet(rows, parquet)
        else:  # `datasets` cannot load an empty split: it is left out (and out of the card)
            parquet.unlink(missing_ok=True)
    write_atomic(out_dir / "validation_items.jsonl", _jsonl(eval_rows))
    card = build_card(
        records,
        splits,
        split_of_item,
        run_info=load_run_info(traces_dir),
        rationale_kinds=kinds,
        split_config={"val_fraction": val_fraction, "seed": seed, "images": split_images_seen},
    )
    write_atomic(out_dir / "card.json", json.dumps(card, indent=2) + "\n")
    write_atomic(out_dir / "README.md", card_markdown(card))
    return ExportSummary(card=card, out_dir=out_dir)
