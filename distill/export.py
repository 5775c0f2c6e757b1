"""`vpagent distill export`: verified traces -> SFT records (JSONL + parquet), split by image.

The export folder is self-contained: images are copied into ``images/`` under content-hashed
names and every ``image`` path is relative to the folder. Each image goes wholly to train or to
validation (a seeded shuffle of the distinct images), so the student is evaluated on images it
never trained on; ``validation_items.jsonl`` lists every labelled item on a validation image
(verified or not) in the eval JSONL format, to compare teacher and student there.

``labels`` (datasets, usually the one the traces were made from) add VPD's answer-only records
from the human labels of every item without a verified program, traced or not: the student then
learns the answers of the whole labelled set and the reasoning of the verified part. With labels,
the traces may be missing: the export is then answer-only.

An augmented item (``source_image`` set: a flip or crop of a photo, see
:mod:`vpagent.distill.augment`) is split with its photo: the split key of every item is the
sha256 of its ``source_image``, else of its image, so adding augmented files leaves the validation
photos unchanged. Augmented items of validation photos are left out altogether (counted in the
card): validation stays the real photos.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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


@dataclass
class ImageHashes:
    """sha256 of image files, each read once."""

    known: dict[Path, str] = field(default_factory=dict)

    def of(self, path: Path) -> str:
        if path not in self.known:
            self.known[path] = sha256_file(path)
        return self.known[path]

    def split_key(self, image: Path, source_image: Path | None) -> str:
        """What decides the split: the photo an augmented image was made from, else the image."""
        return self.of(source_image or image)


@dataclass(frozen=True)
class LabelledItem:
    """A labelled item without a verified program: it gives an answer-only record."""

    item: EvalItem
    image_sha256: str
    split_key: str

    @property
    def answer(self) -> str:
        """The label: its first accepted form, or for soft VQA labels the most given answer."""
        if self.item.soft:
            return Counter(normalize_answer(a) for a in self.item.answers).most_common(1)[0][0]
        return self.item.answers[0]


def labelled_items(
    dataset: Path, verified: set[str], hashes: ImageHashes | None = None
) -> tuple[list[LabelledItem], int]:
    """The items of ``dataset`` not in ``verified``, and how many were skipped (image or source
    photo missing)."""
    hashes = hashes or ImageHashes()
    items: list[LabelledItem] = []
    missing = 0
    for item in load_dataset(dataset):
        if item.id in verified:
            continue
        if not item.image.is_file() or not (item.source_image or item.image).is_file():
            missing += 1
            continue
        key = hashes.split_key(item.image, item.source_image)
        items.append(LabelledItem(item, hashes.of(item.image), key))
    return items, missing


def all_labelled_items(
    datasets: Sequence[Path], verified: set[str], hashes: ImageHashes
) -> tuple[list[LabelledItem], int]:
    """:func:`labelled_items` of every dataset; an item id in two of them is an error."""
    items: list[LabelledItem] = []
    missing = 0
    origin: dict[str, int] = {}
    for number, dataset in enumerate(datasets):
        found, skipped = labelled_items(dataset, verified, hashes)
        for labelled in found:
            first = origin.setdefault(labelled.item.id, number)
            if first != number:
                raise ExportError(
                    f"item id {labelled.item.id} is in both {datasets[first]} and {dataset}"
                )
        items += found
        missing += skipped
    return items, missing


def _trace_key(record: ItemRecord, hashes: ImageHashes) -> str | None:
    """The split key of a traced item; None if its image or source photo is missing."""
    source = record.item.get("source_image")
    if not record.image_sha256 or (source and not Path(source).is_file()):
        return None
    return hashes.of(Path(source)) if source else record.image_sha256


def _copy_image(source: Path, image_sha256: str, images: Path) -> str:
    """Copy an image into ``images/`` as ``<sha256[:16]><suffix>``; the relative path."""
    name = f"{image_sha256[:16]}{source.suffix.lower() or '.img'}"
    target = images / name
    if not target.exists():
        shutil.copyfile(source, target)
    return f"images/{name}"


def _sft_records(record: ItemRecord, image: str, rationale: str, photo: str) -> list[SFTRecord]:
    """Both tasks for a verified item; ``rationale`` is the full target ending in the answer."""
    answer = target_answer(record)
    common = {
        "item_id": record.item_id,
        "image": image,
        "photo": photo,
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
        photo=labelled.split_key,
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
    labels: Path | Sequence[Path] | None = None,
) -> ExportSummary:
    """Write ``train``/``validation`` JSONL + parquet, images, validation items and data card."""
    if not 0 <= val_fraction < 1:
        raise ExportError("--val-fraction must be at least 0 and below 1")
    label_sets = [labels] if isinstance(labels, Path) else list(labels or [])
    records = load_item_records(traces_dir)
    if not records and not label_sets:
        raise ExportError(f"{traces_dir} holds no traced items (run `vpagent distill traces`)")
    texts, kinds = _rationale_texts(traces_dir, records)
    hashes = ImageHashes()
    keys = {r.item_id: key for r in records if (key := _trace_key(r, hashes)) is not None}
    with_image = [r for r in records if r.item_id in keys]
    verified = {r.item_id for r in records if r.status == "verified"}
    extra, labels_missing = all_labelled_items(label_sets, verified, hashes)
    validation = split_images(set(keys.values()) | {x.split_key for x in extra}, val_fraction, seed)
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[SFTRecord]] = {name: [] for name in SPLITS}
    split_of_item: dict[str, str] = {}
    split_images_seen: dict[str, set[str]] = {name: set() for name in SPLITS}
    eval_rows: dict[str, dict[str, Any]] = {}
    augmented: dict[str, Counter[str]] = {name: Counter() for name in SPLITS}
    dropped = 0
    for record in with_image:
        split = "validation" if keys[record.item_id] in validation else "train"
        if split == "validation" and record.item.get("source_image"):
            dropped += 1
            continue
        split_of_item[record.item_id] = split
        image = _copy_image(Path(record.item["image"]), record.image_sha256, images)  # type: ignore[arg-type]
        split_images_seen[split].add(image)
        if split == "validation":
            eval_rows[record.item_id] = _eval_row(record.item_id, record.item, image)
        if record.status == "verified":
            photo = keys[record.item_id]
            splits[split].extend(_sft_records(record, image, texts[record.item_id], photo))
    for labelled in extra:
        split = "validation" if labelled.split_key in validation else "train"
        if split == "validation" and labelled.item.source_image is not None:
            dropped += 1
            continue
        image = _copy_image(labelled.item.image, labelled.image_sha256, images)
        split_images_seen[split].add(image)
        if split == "validation" and labelled.item.id not in eval_rows:
            item = labelled.item.model_dump(mode="json", exclude_none=True)
            eval_rows[labelled.item.id] = _eval_row(labelled.item.id, item, image)
        splits[split].append(_label_record(labelled, image))
        if labelled.item.augmentation:
            augmented[split][labelled.item.augmentation] += 1
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
        if not label_sets
        else {
            "dataset": ", ".join(str(path) for path in label_sets),
            "items": len(extra),
            "image_missing": labels_missing,
        },
    )
    card["traces"] = str(traces_dir) if records else None
    card["records_per_augmentation"] = {
        name: dict(sorted(c.items())) for name, c in augmented.items()
    }
    card["augmented_dropped_validation"] = dropped
    write_atomic(out_dir / "card.json", json.dumps(card, indent=2) + "\n")
    write_atomic(out_dir / "README.md", card_markdown(card) + _notes(card))
    return ExportSummary(card=card, out_dir=out_dir)


def _rationale_texts(
    traces_dir: Path, records: list[ItemRecord]
) -> tuple[dict[str, str], Counter[str]]:
    """item id -> rationale of every verified item (stored, else from its template), and how
    many of each kind."""
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
    return texts, kinds


def _notes(card: dict[str, Any]) -> str:
    """README lines the card template does not have: no traces, augmented pictures."""
    lines = []
    if card["traces"] is None:
        lines.append("No program traces: every record is an answer-only record from labels.")
    per_split = card["records_per_augmentation"]
    if any(per_split.values()) or card["augmented_dropped_validation"]:
        counts = "; ".join(
            f"{name}: " + (", ".join(f"{k} {n}" for k, n in c.items()) or "none")
            for name, c in per_split.items()
        )
        lines.append(
            f"Label records by augmentation ({counts}). Augmented pictures of validation photos "
            f"are left out ({card['augmented_dropped_validation']} items): validation is real "
            "photos only."
        )
    return "".join(f"\n{line}\n" for line in lines)


def add_scene_text(
    export_dir: Path, describe: Callable[[Path], str], splits: Sequence[str] = SPLITS
) -> int:
    """Write each record's photo's scene text (``describe``: the offline pack's, see
    ``vpagent.student.scene_text``) into its ``scene`` field, JSONL and parquet, so a student
    trained elsewhere reads the same objects; the number of records written."""
    written = 0
    for name in splits:
        path = export_dir / f"{name}.jsonl"
        if not path.is_file():
            continue
        rows = [
            SFTRecord.model_validate_json(line)
            for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        rows = [row.model_copy(update={"scene": describe(export_dir / row.image)}) for row in rows]
        write_atomic(path, _jsonl([r.model_dump() for r in rows]))
        if rows:
            _write_parquet(rows, export_dir / "data" / f"{name}.parquet")
        written += len(rows)
    return written
