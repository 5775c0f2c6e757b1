"""Benchmark question files as their authors distribute them: GQA, VQAv2 / OK-VQA, A-OKVQA.

Each needs its images folder (``--images``); without one, the usual places next to the file are
tried (``images/``, and COCO's split folders such as ``val2014/``), else a clear error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vpagent.evaluation.datasets.items import DatasetError, EvalItem, LoadedDataset

_TRAILING_DIGITS = re.compile(r"(\d+)$")
IMAGE_GLOBS = ("*.jpg", "*.jpeg", "*.png")


def images_folder(given: Path | None, near: Path, names: Iterable[str], what: str) -> Path:
    """``given``, else the first existing folder ``names`` beside ``near`` or one level up."""
    if given is not None:
        if not given.is_dir():
            raise DatasetError(f"--images {given} is not a folder")
        return given
    candidates = [base / name for name in names for base in (near.parent, near.parent.parent)]
    for folder in candidates:
        if folder.is_dir():
            return folder
    raise DatasetError(f"{near}: {what} need their images folder; pass --images DIR")


def coco_index(folder: Path) -> dict[int, Path]:
    """Image files by the COCO id their name ends in (``COCO_val2014_000000000042.jpg``)."""
    index: dict[int, Path] = {}
    for pattern in IMAGE_GLOBS:
        for path in folder.glob(pattern):
            match = _TRAILING_DIGITS.search(path.stem)
            if match:
                index.setdefault(int(match.group(1)), path)
    return index


def load_gqa(questions: Path, data: dict[str, Any], images: Path | None) -> LoadedDataset:
    """GQA's ``{qid: {imageId, question, answer, types}}``; pictures are ``{imageId}.jpg``."""
    folder = images_folder(images, questions, ["images"], "GQA questions")
    loaded = LoadedDataset(layout="GQA questions")
    for qid, row in data.items():
        if "answer" not in row:
            loaded.skipped["no answer (test split)"] += 1
            continue
        loaded.items.append(
            EvalItem(
                id=str(qid),
                image=folder / f"{row['imageId']}.jpg",
                question=row["question"],
                answers=[str(row["answer"])],
                type=(row.get("types") or {}).get("structural", "all"),
                source="GQA",
            )
        )
    return loaded


def vqa_partner(path: Path, *, want: str) -> Path:
    """The VQA annotations file for a questions file, or the reverse (by the official names:
    ``v2_OpenEnded_mscoco_val2014_questions.json`` <-> ``v2_mscoco_val2014_annotations.json``)."""

    def annotations_name(name: str) -> str:
        for task in ("OpenEnded_", "MultipleChoice_"):
            name = name.replace(task, "")
        return name.replace("questions", "annotations")

    if want == "annotations":
        partner = path.with_name(annotations_name(path.name))
        if partner != path and partner.is_file():
            return partner
        raise DatasetError(
            f"{path}: VQA questions need their annotations file {partner.name} beside them "
            "(test splits have no answers)"
        )
    for candidate in sorted(path.parent.glob("*questions*.json")):
        if annotations_name(candidate.name) == path.name:
            return candidate
    raise DatasetError(f"{path}: VQA annotations need their questions file beside them")


def load_vqa(questions: Path, annotations: Path, images: Path | None) -> LoadedDataset:
    """VQAv2 / OK-VQA: questions + annotations files; scored with VQA soft accuracy."""
    asked = json.loads(questions.read_text(encoding="utf-8"))
    notes = json.loads(annotations.read_text(encoding="utf-8"))
    split = str(asked.get("data_subtype", ""))
    names = [split, "images"] if split else ["images"]
    folder = images_folder(images, questions, names, "VQA questions")
    files = coco_index(folder)
    by_id = {note["question_id"]: note for note in notes.get("annotations", [])}
    loaded = LoadedDataset(layout="VQAv2 / OK-VQA")
    for row in asked["questions"]:
        note = by_id.get(row["question_id"])
        if note is None:
            loaded.skipped["question without annotation"] += 1
            continue
        loaded.items.append(
            EvalItem(
                id=str(row["question_id"]),
                image=files.get(row["image_id"], folder / f"{row['image_id']}.jpg"),
                question=row["question"],
                answers=[str(a["answer"]) for a in note["answers"]],
                type=note.get("answer_type", "all"),
                soft=True,
                source="VQA",
            )
        )
    return loaded


def load_aokvqa(path: Path, rows: list[dict[str, Any]], images: Path | None) -> LoadedDataset:
    """A-OKVQA: multiple choice (``choices``, ``correct_choice_idx``) over COCO 2017 images."""
    split = next((s for s in ("train", "val", "test") if s in path.stem), "val")
    folder = images_folder(images, path, [f"{split}2017", "images"], "A-OKVQA questions")
    files = coco_index(folder)
    loaded = LoadedDataset(layout="A-OKVQA")
    for row in rows:
        index = row.get("correct_choice_idx")
        choices = [str(choice) for choice in row.get("choices") or []]
        if index is None or not 0 <= int(index) < len(choices):
            loaded.skipped["no answer (test split)"] += 1
            continue
        loaded.items.append(
            EvalItem(
                id=str(row["question_id"]),
                image=files.get(int(row["image_id"]), folder / f"{int(row['image_id']):012d}.jpg"),
                question=row["question"],
                answers=[choices[int(index)]],
                choices=choices,
                type="difficult" if row.get("difficult_direct_answer") else "multiple choice",
                source="A-OKVQA",
            )
        )
    return loaded
