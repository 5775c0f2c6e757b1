"""Paired benchmarks (MMVP): two items that ask the same question of two different images.

MMVP scores a pair as right only when both of its answers are. Its Visual Sketchpad and
Hugging Face layouts do not mark pairs; they list each pair's items one after the other. A
dataset counts as paired when most of its items (:data:`PAIRED_SHARE`) fall into such
neighbours, so a question repeated by chance in GQA or VQAv2 never makes a pair.
"""

from __future__ import annotations

from collections.abc import Sequence

from vpagent.answers import normalize
from vpagent.evaluation.datasets.items import EvalItem

PAIRED_SHARE = 0.8


def _same_question(first: EvalItem, second: EvalItem) -> bool:
    return (
        normalize(first.question) == normalize(second.question)
        and first.choices == second.choices
        and first.image != second.image
    )


def neighbour_pairs(items: Sequence[EvalItem]) -> list[tuple[int, int]]:
    """Indices of neighbours that ask the same question of different images, left to right."""
    pairs, index = [], 0
    while index + 1 < len(items):
        if _same_question(items[index], items[index + 1]):
            pairs.append((index, index + 1))
            index += 2
        else:
            index += 1
    return pairs


def mark_pairs(items: list[EvalItem]) -> int:
    """Give paired neighbours a shared ``pair`` id when the dataset is paired; return the
    number of pairs marked (0: not a paired dataset, or its pairs are marked already)."""
    if any(item.pair is not None for item in items):
        return 0
    pairs = neighbour_pairs(items)
    if 2 * len(pairs) < PAIRED_SHARE * len(items):
        return 0
    for left, right in pairs:
        name = f"{items[left].id}+{items[right].id}"
        items[left] = items[left].model_copy(update={"pair": name})
        items[right] = items[right].model_copy(update={"pair": name})
    return len(pairs)
