"""Prediction files in the formats the benchmarks' official scorers read.

- ``gqa``: ``[{"questionId": "201307251", "prediction": "yes"}]`` (GQA's eval.py; answers in
  lower case, as GQA's own answers are).
- ``vqa``: ``[{"question_id": 262148000, "answer": "2"}]`` (the VQAv2 / OK-VQA evaluation API;
  numeric ids stay numbers, the scorer normalises answers itself).
- ``choice``: ``[{"question_id": "val_Spatial_Relation_1", "answer": "B"}]``, the letter of the
  chosen option, empty when no option was named (multiple-choice benchmarks).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from string import ascii_uppercase
from typing import Any, Literal

from vpagent.answers import normalize_answer
from vpagent.evaluation.evaluate import ItemResult, choice_index
from vpagent.pool.jsonl import write_atomic

PredictionFormat = Literal["gqa", "vqa", "choice"]
LAYOUT_FORMATS: dict[str, PredictionFormat] = {
    "GQA questions": "gqa",
    "VQAv2 / OK-VQA": "vqa",
}


class PredictionsError(ValueError):
    """The results cannot be written in the asked format."""


def default_format(layout: str, results: Sequence[ItemResult]) -> PredictionFormat:
    """GQA and VQA layouts get their scorer's format; multiple-choice items get letters."""
    if layout in LAYOUT_FORMATS:
        return LAYOUT_FORMATS[layout]
    if results and all(result.choices for result in results):
        return "choice"
    raise PredictionsError(
        f"no official prediction format for the {layout} layout with open answers; "
        "choose one with --predictions-format gqa|vqa"
    )


def _question_id(item_id: str) -> int | str:
    return int(item_id) if item_id.isdigit() else item_id


def _letter(result: ItemResult) -> str:
    if not result.choices:
        raise PredictionsError(f"item {result.id} has no choices: the choice format needs them")
    index = choice_index(result.prediction, result.choices)
    return ascii_uppercase[index] if index is not None else ""


def prediction_rows(results: Sequence[ItemResult], form: PredictionFormat) -> list[dict[str, Any]]:
    """One row per item, in ``form``; an item without an answer gets an empty one."""
    if form == "gqa":
        return [
            {"questionId": r.id, "prediction": normalize_answer(r.prediction or "")}
            for r in results
        ]
    if form == "vqa":
        return [
            {"question_id": _question_id(r.id), "answer": (r.prediction or "").strip()}
            for r in results
        ]
    return [{"question_id": _question_id(r.id), "answer": _letter(r)} for r in results]


def write_predictions(path: Path, results: Sequence[ItemResult], form: PredictionFormat) -> None:
    """Write the rows of :func:`prediction_rows` as one JSON list."""
    write_atomic(path, json.dumps(prediction_rows(results, form), ensure_ascii=False) + "\n")
