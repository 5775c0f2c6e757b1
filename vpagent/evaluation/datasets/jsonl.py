"""vpagent's own JSONL: what ``vpagent eval`` reads and ``vpagent distill questions`` writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import ValidationError

from vpagent.evaluation.datasets.items import DatasetError, EvalItem, LoadedDataset


def load_jsonl(path: Path) -> LoadedDataset:
    """Rows: id, image (relative to the file), question, answer, [accept, type, choices,
    pair, license, license_url, source, source_image (relative to the file), augmentation].
    Any malformed row is an error naming its line."""
    loaded = LoadedDataset(layout="vpagent JSONL")
    for number, line in numbered_lines(path):
        try:
            row = json.loads(line)
            answers = [row["answer"], *row.get("accept", [])]
            loaded.items.append(
                EvalItem(
                    id=str(row.get("id", number)),
                    image=path.parent / row["image"],
                    question=row["question"],
                    answers=[str(a) for a in answers],
                    choices=row.get("choices"),
                    type=row.get("type", "all"),
                    pair=row.get("pair"),
                    license=row.get("license"),
                    license_url=row.get("license_url"),
                    source=row.get("source"),
                    source_image=_beside(path, row.get("source_image")),
                    augmentation=row.get("augmentation"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as error:
            raise DatasetError(f"{path}:{number}: {_reason(error)}") from None
    return loaded


def _beside(path: Path, reference: str | None) -> Path | None:
    """A path written relative to the file at ``path``, resolved like ``image``."""
    return path.parent / reference if reference else None


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a UTF-8 text file such as a JSONL file."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error}; rows need image, question and answer"
    if isinstance(error, ValidationError):
        detail = error.errors()[0]
        return f"{'.'.join(str(p) for p in detail['loc'])}: {detail['msg']}"
    return str(error)
