"""Visual Sketchpad's processed task folders (BLINK, MMVP, V*Bench as its authors ship them).

One folder per item, holding ``request.json`` and the picture(s)::

    {"query": "<img src='../tasks/blink_spatial/processed/val_Spatial_Relation_10/image.jpg'>
               Is the laptop touching the person?\\nSelect from the following choices.\\n
               (A) yes\\n(B) no",
     "images": ["../tasks/blink_spatial/processed/val_Spatial_Relation_10/image.jpg"],
     "answer": "(A)"}

The options are parsed out of the query (V*Bench folders also carry ``question`` and
``options``). Image entries are paths relative to Sketchpad's own working folder, so each is
looked up in the item's folder by its file name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from vpagent.evaluation.datasets.choices import resolve_answer, split_options, strip_image_tags
from vpagent.evaluation.datasets.items import EvalItem, LoadedDataset
from vpagent.evaluation.datasets.media import multi_image_question, side_by_side

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}
_SPLIT_PREFIX = re.compile(r"^(val|test|dev|train)_", re.IGNORECASE)
_NUMBER_SUFFIX = re.compile(r"_?\d+$")


def _natural(path: Path) -> tuple[str, int]:
    name = path.parent.name
    number = re.search(r"(\d+)$", name)
    return (name[: number.start()] if number else name, int(number.group(1)) if number else -1)


def _task_type(item_folder: Path, dataset: Path) -> str:
    kind = _SPLIT_PREFIX.sub("", _NUMBER_SUFFIX.sub("", item_folder.name))
    if kind:
        return kind
    return dataset.parent.name if dataset.name == "processed" else dataset.name


def _image_paths(folder: Path, row: dict[str, object]) -> list[Path]:
    entries = row.get("images")
    if not isinstance(entries, list) or not entries:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    paths = []
    for entry in entries:
        as_given = folder / str(entry)
        paths.append(as_given if as_given.is_file() else folder / Path(str(entry)).name)
    return paths


def _question_and_options(row: dict[str, object]) -> tuple[str, list[str]] | None:
    options = row.get("options")
    if isinstance(row.get("question"), str) and isinstance(options, list) and options:
        return str(row["question"]), [str(option) for option in options]
    query = strip_image_tags(str(row.get("query", "")))
    return split_options(query)


def load_sketchpad(folder: Path, cache: Path) -> LoadedDataset:
    """Every ``*/request.json`` under ``folder``, in natural order."""
    loaded = LoadedDataset(layout="Visual Sketchpad folders")
    for request in sorted(folder.glob("*/request.json"), key=_natural):
        try:
            row = json.loads(request.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            loaded.skipped["request.json unreadable"] += 1
            continue
        if not isinstance(row, dict) or "answer" not in row:
            loaded.skipped["request.json without an answer"] += 1
            continue
        parsed = _question_and_options(row)
        if parsed is None:
            loaded.skipped["no (A) (B) options in the query"] += 1
            continue
        question, choices = parsed
        answer = resolve_answer(str(row["answer"]), choices)
        if answer is None:
            loaded.skipped["answer is not one of the options"] += 1
            continue
        paths = _image_paths(request.parent, row)
        if not paths:
            loaded.skipped["no image in the folder"] += 1
            continue
        image, images = paths[0], None
        if len(paths) > 1:
            try:
                image, images = side_by_side(paths, cache), paths
            except OSError:
                loaded.skipped["multi-image item with a missing or unreadable image"] += 1
                continue
            question = multi_image_question(question, len(paths))
        loaded.items.append(
            EvalItem(
                id=request.parent.name,
                image=image,
                images=images,
                question=question,
                answers=[answer],
                choices=choices,
                type=_task_type(request.parent, folder),
                source="Visual Sketchpad",
            )
        )
    return loaded
