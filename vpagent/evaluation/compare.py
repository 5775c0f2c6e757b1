"""Two `vpagent eval` results files, item by item: what flipped, per type, and whether it is
more than chance (exact McNemar on the items right in one run only)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from vpagent.evaluation.evaluate import ItemResult
from vpagent.evaluation.stats import mcnemar_p
from vpagent.pool.dataset_run import read_run
from vpagent.pool.header import RunHeader

RIGHT = 1.0  # an item counts as right with full credit (soft VQA scores below 1 do not)


class CompareError(ValueError):
    """A results file cannot be read; the message names it and the line."""


class TypeComparison(BaseModel):
    n: int
    accuracy_a: float
    accuracy_b: float
    only_a: list[str]  # ids right in A only
    only_b: list[str]  # ids right in B only
    p_value: float


class Comparison(BaseModel):
    """Per type and overall, over the ids both files hold."""

    per_type: dict[str, TypeComparison]
    overall: TypeComparison
    missing_in_b: list[str]
    missing_in_a: list[str]
    differences: list[str] = []  # how the two runs' settings and datasets differ (headers)


@dataclass
class ResultsFile:
    """One `vpagent eval --out` file: its run header (None for a hand-made file) and results."""

    path: Path
    header: RunHeader | None
    results: dict[str, ItemResult]


def read_results(path: Path) -> ResultsFile:
    """A results file; a repeated id keeps its last line, a torn last line is left out."""
    if not path.is_file():
        raise CompareError(f"cannot read {path}: no such file")
    try:
        header, results = read_run(path, ItemResult)
    except OSError as error:
        raise CompareError(f"cannot read {path}: {error.strerror or error}") from None
    except (ValueError, ValidationError) as error:  # CorruptFile, or not an eval result
        first = str(error).splitlines()[0]
        raise CompareError(f"{path}: not a vpagent eval results file ({first})") from None
    return ResultsFile(path, header, results)


def _run_differences(a: ResultsFile, b: ResultsFile) -> list[str]:
    if a.header is None or b.header is None:
        return []
    return a.header.differences(b.header)


def _compare(pairs: list[tuple[ItemResult, ItemResult]]) -> TypeComparison:
    only_a = sorted(a.id for a, b in pairs if a.score >= RIGHT > b.score)
    only_b = sorted(a.id for a, b in pairs if b.score >= RIGHT > a.score)
    n = len(pairs)
    return TypeComparison(
        n=n,
        accuracy_a=sum(a.score for a, _ in pairs) / n if n else 0.0,
        accuracy_b=sum(b.score for _, b in pairs) / n if n else 0.0,
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_p(len(only_a), len(only_b)),
    )


def compare_results(first: ResultsFile, second: ResultsFile) -> Comparison:
    """Match the two runs by id; compare per type (A's type) and overall."""
    a, b = first.results, second.results
    shared = [(a[item_id], b[item_id]) for item_id in a if item_id in b]
    by_type: dict[str, list[tuple[ItemResult, ItemResult]]] = defaultdict(list)
    for pair in shared:
        by_type[pair[0].type].append(pair)
    return Comparison(
        per_type={kind: _compare(pairs) for kind, pairs in sorted(by_type.items())},
        overall=_compare(shared),
        missing_in_b=sorted(set(a) - set(b)),
        missing_in_a=sorted(set(b) - set(a)),
        differences=_run_differences(first, second),
    )
