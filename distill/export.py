"""`vpagent distill export`: verified traces -> SFT records (JSONL + parquet), split by image.

The export folder is self-contained: images are copied into ``images/`` under content-hashed
names and every ``image`` path is relative to the folder. Each image goes wholly to train or to
validation (a seeded shuffle of the distinct images), so the student is evaluated on images it
never trained on; ``validation_items.jsonl`` lists every labelled item on a validation image
(verified or not) in the eval JSONL format, to compare teacher and student there.

``labels`` (a dataset, usually the one the traces were made from) adds VPD's answer-only records
from the human labels of every item without a verified program, traced or not: the student then
learns the answers of the whole labelled set and the reasoning of the verified part.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpagent.answers import normalize_answer
from vpagent.distill.card import build_card, card_markdown
from vpagent.distill.rationales import load_rationales, rationales, strip_answer, target_answer
from vpagent.distill.trace_records import ItemRecord, asked_question
from vpagent.distill.traces import load_item_records, load_run_info
from vpagent.evaluation.datasets import EvalItem, load_dataset
from vpagent.llm.packs import sha256_file
from vpagent.pool.jsonl import write_atomic
from vpagent.student.records import SFTRecord

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


@dataclass(frozen=True)
class LabelledItem:
    """A labelled item without a verified program: it gives an answer-only record."""

    item: EvalItem
    image_sha256: str

    @property
    def answer(self) -> str:
        """The label: its first accepted form, or for soft VQA labels the most given answer."""
        if self.item.soft:
            return Counter(normalize_answer(a) for a in self.item.answers).most_common(1)[0][0]
        return self.item.answers[0]


def labelled_items(dataset: Path, verified: set[str]) -> tuple[list[LabelledItem], int]:
    """The items of ``dataset`` not in ``verified``, and how many were skipped (no image)."""
    hashes: dict[Path, str] = {}
    items: list[LabelledItem] = []
    missing = 0
    for item in load_dataset(dataset):
        if item.id in verified:
            continue
        if not item.image.is_file():
            missing += 1
            continue
        if item.image not in hashes:
            hashes[item.image] = sha256_file(item.image)
        items.append(LabelledItem(item, hashes[item.image]))
    return items, missing


def _copy_image(source: Path, image_sha256: str, images: Path) -> str:
    """Copy an image into ``images/`` as ``<sha256[:16]><suffix>``; the relative path."""
    name = f"{image_sha256[:16]}{source.suffix.lower() or '.img'}"
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


def _label_record(labelled: LabelledItem, image: str) -> SFTRecord:
    item = labelled.item
    return SFTRecord(
        id=f"{item.id}:answer",
        item_id=item.id,
        image=image,
        question=asked_question(item),
        answer=labelled.answer,
        type=item.type,
        task="answer",
        target=labelled.answer,
        origin="label",
        license=item.license,
        source=item.source,
    )


def _eval_row(item_id: str, item: dict[str, Any], image: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": item_id,
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
    traces_dir: Path,
    out_dir: Path,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    labels: Path | None = None,
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
    extra, labels_missing = (
        labelled_items(labels, {r.item_id for r in records if r.status == "verified"})
        if labels is not None
        else ([], 0)
    )
    hashes = {r.image_sha256 for r in with_image} | {x.image_sha256 for x in extra}
    validation = split_images(hashes, val_fraction, seed)  # type: ignore[arg-type]
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[SFTRecord]] = {name: [] for name in SPLITS}
    split_of_item: dict[str, str] = {}
    split_images_seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    eval_rows: dict[str, dict[str, Any]] = {}
    for record in with_image:
        split = "validation" if record.image_sha256 in validation else "train"
        split_of_item[record.item_id] = split
        image = _copy_image(Path(record.item["image"]), record.image_sha256, images)  # type: ignore[arg-type]
        split_images_seen[split].add(image)
        if split == "validation":
            eval_rows[record.item_id] = _eval_row(record.item_id, record.item, image)
        if record.status == "verified":
            splits[split].extend(_sft_records(record, image, texts[record.item_id]))
    for labelled in extra:
        split = "validation" if labelled.image_sha256 in validation else "train"
        image = _copy_image(labelled.item.image, labelled.image_sha256, images)
        split_images_seen[split].add(image)
        if split == "validation" and labelled.item.id not in eval_rows:
            item = labelled.item.model_dump(mode="json", exclude_none=True)
            eval_rows[labelled.item.id] = _eval_row(labelled.item.id, item, image)
        splits[split].append(_label_record(labelled, image))
    for name, rows in splits.items():
        write_atomic(out_dir / f"{name}.jsonl", _jsonl([r.model_dump() for r in rows]))
        parquet = out_dir / "data" / f"{name}.parquet"
        if rows:
            _write_parquet(rows, parquet)
        else:  # `datasets` cannot load an empty split: it is left out (and out of the card)
            parquet.unlink(missing_ok=True)
    write_atomic(out_dir / "validation_items.jsonl", _jsonl(list(eval_rows.values())))
    card = build_card(
        records,
        splits,
        split_of_item,
        run_info=load_run_info(traces_dir),
        rationale_kinds=kinds,
        split_config={"val_fraction": val_fraction, "seed": seed, "images": split_images_seen},
        labels=None
        if labels is None
        else {"dataset": str(labels), "items": len(extra), "image_missing": labels_missing},
    )
    write_atomic(out_dir / "card.json", json.dumps(card, indent=2) + "\n")
    write_atomic(out_dir / "README.md", card_markdown(card))
    return ExportSummary(card=card, out_dir=out_dir)
