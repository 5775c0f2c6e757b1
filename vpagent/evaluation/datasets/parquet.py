"""Hugging Face ``datasets`` parquet files (BLINK, VQAv2, A-OKVQA, ... as on the hub).

Columns read: ``question``; the answer from ``answer`` (text or a letter such as "(A)" when
``choices`` are given), ``correct_choice_idx`` with ``choices``, ``answers`` (VQA's ten human
answers: soft accuracy) or ``multiple_choice_answer``; the picture(s) from ``image`` or
``image_1`` .. ``image_N`` (``{bytes, path}`` structs); the id from ``idx``/``id``/
``question_id``; the type from ``sub_task``/``type``/``question_type``/``answer_type``.
Embedded pictures are written once to the cache folder, named by their hash.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vpagent.evaluation.datasets.choices import resolve_answer, split_options
from vpagent.evaluation.datasets.items import DatasetError, EvalItem, LoadedDataset
from vpagent.evaluation.datasets.media import multi_image_question, side_by_side, store_bytes

ID_COLUMNS = ("idx", "id", "question_id", "qid")
TYPE_COLUMNS = ("sub_task", "type", "question_type", "answer_type")
ANSWER_COLUMNS = ("answer", "answers", "correct_choice_idx", "multiple_choice_answer")
_NUMBERED_IMAGE = re.compile(r"^image_(\d+)$")


def _image_columns(columns: list[str]) -> list[str]:
    numbered = sorted(
        (int(m.group(1)), name) for name in columns if (m := _NUMBERED_IMAGE.match(name))
    )
    return (["image"] if "image" in columns else []) + [name for _, name in numbered]


def _picture(value: Any, base: Path, cache: Path) -> Path | None:
    """A file for one image cell: embedded bytes, or a path relative to the parquet file."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
    else:
        data, path = (value, None) if isinstance(value, bytes) else (None, value)
    if data:
        return store_bytes(data, cache)
    if path:
        candidate = base / str(path)
        return candidate if candidate.is_file() else None
    return None


def _answers(row: dict[str, Any], choices: list[str] | None) -> tuple[list[str], bool] | None:
    """The accepted answers and whether they are VQA human answers (soft accuracy)."""
    if choices and row.get("correct_choice_idx") is not None:
        index = int(row["correct_choice_idx"])
        return ([choices[index]], False) if 0 <= index < len(choices) else None
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip():
        if choices:
            resolved = resolve_answer(answer, choices)
            return ([resolved], False) if resolved is not None else None
        return [answer], False
    many = row.get("answers")
    if isinstance(many, list) and many:
        texts = [str(a["answer"]) if isinstance(a, dict) else str(a) for a in many]
        return texts, len(texts) >= 3
    if row.get("multiple_choice_answer"):
        return [str(row["multiple_choice_answer"])], False
    return None


def _open(file: Path) -> tuple[list[str], Any]:
    """The column names and a ``pyarrow.parquet.ParquetFile``."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            "reading parquet needs pyarrow: pip install 'vpagent[distill]'"
        ) from None
    try:
        handle = pq.ParquetFile(file)
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise DatasetError(f"{file} is not a readable parquet file ({error})") from None
    return handle.schema_arrow.names, handle


def load_parquet(path: Path, cache: Path) -> LoadedDataset:
    """One parquet file, or every ``*.parquet`` under a folder (in sorted order)."""
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    loaded = LoadedDataset(layout="Hugging Face parquet")
    for file in files:
        columns, handle = _open(file)
        pictures = _image_columns(columns)
        if "question" not in columns or not pictures or not set(ANSWER_COLUMNS) & set(columns):
            raise DatasetError(
                f"{file}: parquet columns {columns} lack question, an answer column "
                f"({', '.join(ANSWER_COLUMNS)}) or an image column (image, image_1, ...)"
            )
        number = 0
        for batch in handle.iter_batches(batch_size=32):
            for row in batch.to_pylist():
                number += 1
                item = _item(row, pictures, file, number, cache, loaded)
                if item is not None:
                    loaded.items.append(item)
    return loaded


def _item(
    row: dict[str, Any],
    picture_columns: list[str],
    file: Path,
    number: int,
    cache: Path,
    loaded: LoadedDataset,
) -> EvalItem | None:
    question = str(row["question"] or "")
    choices = [str(c) for c in row["choices"]] if row.get("choices") else None
    if choices is None and row.get("options"):
        choices = [str(c) for c in row["options"]]
    if choices is None and (parsed := split_options(question)) is not None and row.get("answer"):
        question, choices = parsed
    answers = _answers(row, choices)
    if answers is None:
        loaded.skipped["no usable answer"] += 1
        return None
    cells = [row[name] for name in picture_columns if row.get(name) is not None]
    found = [_picture(cell, file.parent, cache) for cell in cells]
    paths = [path for path in found if path is not None]
    if not paths or len(paths) < len(found):
        loaded.skipped["image missing or unreadable"] += 1
        return None
    image, images = paths[0], None
    if len(paths) > 1:
        image, images = side_by_side(paths, cache), paths
        question = multi_image_question(question, len(paths))
    item_id = next((str(row[c]) for c in ID_COLUMNS if row.get(c) is not None), None)
    kind = next((str(row[c]) for c in TYPE_COLUMNS if row.get(c)), "all")
    return EvalItem(
        id=item_id or f"{file.stem}-{number}",
        image=image,
        images=images,
        question=question,
        answers=answers[0],
        soft=answers[1],
        choices=choices,
        type=kind,
        source=f"parquet {file.name}",
    )
