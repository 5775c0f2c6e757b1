"""Which layout a path holds, and reading it: the one entry point for ``eval`` and ``distill``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vpagent.evaluation.datasets.benchmarks import load_aokvqa, load_gqa, load_vqa, vqa_partner
from vpagent.evaluation.datasets.items import DatasetError, EvalItem, LoadedDataset
from vpagent.evaluation.datasets.jsonl import load_jsonl
from vpagent.evaluation.datasets.media import default_cache
from vpagent.evaluation.datasets.pairs import mark_pairs
from vpagent.evaluation.datasets.parquet import load_parquet
from vpagent.evaluation.datasets.sketchpad import load_sketchpad

EXPECTED = (
    "expected vpagent JSONL (.jsonl rows with image, question, answer), a folder of Visual "
    "Sketchpad items (*/request.json), Hugging Face parquet (.parquet, or a folder of them), "
    "GQA questions ({qid: {imageId, question, answer}}), VQAv2/OK-VQA questions or annotations "
    "JSON, or A-OKVQA JSON (a list with question_id, image_id, choices)"
)
USES_IMAGES = {"GQA questions", "VQAv2 / OK-VQA", "A-OKVQA"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is not valid JSON ({error}); {EXPECTED}") from None


def _first(data: Any) -> Any:
    if isinstance(data, list):
        return data[0] if data else None
    if isinstance(data, dict):
        return next(iter(data.values()), None)
    return None


def _from_json(path: Path, images: Path | None) -> LoadedDataset:
    data = _read_json(path)
    first = _first(data)
    if isinstance(data, dict) and {"images", "annotations", "categories"} <= data.keys():
        raise DatasetError(
            f"{path} is a COCO instance file, not questions: turn it into questions with "
            "`vpagent distill questions`"
        )
    if isinstance(data, dict) and isinstance(data.get("questions"), list):
        return load_vqa(path, vqa_partner(path, want="annotations"), images)
    if isinstance(data, dict) and isinstance(data.get("annotations"), list):
        return load_vqa(vqa_partner(path, want="questions"), path, images)
    if isinstance(data, dict) and isinstance(first, dict) and {"imageId", "question"} <= set(first):
        return load_gqa(path, data, images)
    aokvqa = {"question_id", "image_id", "question", "choices"}
    if isinstance(data, list) and isinstance(first, dict) and aokvqa <= set(first):
        return load_aokvqa(path, data, images)
    raise DatasetError(f"{path}: no known layout; {EXPECTED}")


def read_dataset(
    path: Path, *, images: Path | None = None, cache: Path | None = None
) -> LoadedDataset:
    """Detect the layout of ``path`` (file or folder, extension, keys) and load it.

    ``images`` is the images folder of GQA / VQA / A-OKVQA files; ``cache`` receives pictures
    that arrive as bytes and side-by-side canvases of multi-image items.
    """
    cache = cache or default_cache()
    try:
        if path.is_dir():
            if any(path.glob("*/request.json")):
                loaded = load_sketchpad(path, cache)
            elif any(path.rglob("*.parquet")):
                loaded = load_parquet(path, cache)
            else:
                raise DatasetError(
                    f"{path} is a folder without */request.json or *.parquet; {EXPECTED}"
                )
        elif not path.is_file():
            raise DatasetError(f"no dataset at {path}")
        elif path.suffix == ".jsonl":
            loaded = load_jsonl(path)
        elif path.suffix == ".parquet":
            loaded = load_parquet(path, cache)
        elif path.suffix == ".json":
            loaded = _from_json(path, images)
        else:
            raise DatasetError(f"{path}: unknown file type {path.suffix or '(none)'}; {EXPECTED}")
    except DatasetError:
        raise
    except (KeyError, TypeError, ValueError) as error:
        raise DatasetError(f"{path}: a row lacks or mangles a field ({error!r})") from None
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error}") from None
    if images is not None and loaded.layout not in USES_IMAGES:
        raise DatasetError(f"--images is not used by the {loaded.layout} layout of {path}")
    mark_pairs(loaded.items)
    if not loaded.items:
        reasons = ", ".join(f"{r}: {n}" for r, n in loaded.skipped.items()) or "no rows"
        raise DatasetError(f"{path} ({loaded.layout}) holds no usable item ({reasons})")
    return loaded


def load_dataset(
    path: Path, *, images: Path | None = None, cache: Path | None = None
) -> list[EvalItem]:
    """The items of :func:`read_dataset` (its skip counts are dropped: use it to see them)."""
    return read_dataset(path, images=images, cache=cache).items
