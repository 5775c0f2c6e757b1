"""Two students (each over its seeds), or a student and the teacher, item by item (issue 32).

    .venv/bin/python benchmarks/compare_students.py --a FOLDER [FOLDER ...]
        (--b FOLDER [FOLDER ...] | --teacher) [--set validation|dev]

Each FOLDER is a trained student (one seed) with ``eval/<set>/items.jsonl`` (`vpagent distill
eval`, as `bench_student_epochs.py` leaves it). A side is right on an item when most of its
seeds are (the seeds answer the same items; items, not seeds, are the unit of the exact
McNemar test). ``--teacher`` instead of ``--b``: the teacher's answer each item of side a
records (validation: the traced teacher). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench_student_ablation import item_scores, jsonl  # benchmarks/, beside this script

from vpagent.evaluation.stats import mcnemar_p


def seed_scores(folders: list[Path], name: str) -> list[dict[str, float]]:
    runs = [item_scores(folder, name) for folder in folders]
    if any(run.keys() != runs[0].keys() for run in runs):
        raise SystemExit(f"the folders were not evaluated on the same {name} items")
    return runs


def teacher_scores(folder: Path, name: str) -> dict[str, float]:
    rows = jsonl(folder / "eval" / name / "items.jsonl")
    if any(row.get("teacher") is None for row in rows):
        raise SystemExit(f"{folder}'s {name} items record no teacher answer")
    return {row["id"]: row["teacher"]["score"] for row in rows}


def majority(runs: list[dict[str, float]]) -> dict[str, bool]:
    return {item: sum(run[item] for run in runs) > len(runs) / 2 for item in runs[0]}


def compare(ours: list[dict[str, float]], theirs: list[dict[str, float]]) -> dict[str, Any]:
    """Items right on most of side a's seeds and not side b's, and the other way; McNemar p."""
    a, b = majority(ours), majority(theirs)
    if a.keys() != b.keys():
        raise SystemExit("the two sides were not evaluated on the same items")
    only_a = sum(a[i] and not b[i] for i in a)
    only_b = sum(b[i] and not a[i] for i in a)
    return {
        "n": len(a),
        "right_a": sum(a.values()),
        "right_b": sum(b.values()),
        "only_a": only_a,
        "only_b": only_b,
        "p": mcnemar_p(only_a, only_b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", nargs="+", type=Path, required=True, help="student folders")
    side_b = parser.add_mutually_exclusive_group(required=True)
    side_b.add_argument("--b", nargs="+", type=Path, help="student folders")
    side_b.add_argument("--teacher", action="store_true", help="the teacher side a records")
    parser.add_argument("--set", default="validation", choices=["validation", "dev"])
    args = parser.parse_args()
    ours = seed_scores(args.a, args.set)
    theirs = (
        [teacher_scores(args.a[0], args.set)] if args.teacher else seed_scores(args.b, args.set)
    )
    print(json.dumps(compare(ours, theirs), indent=1))


if __name__ == "__main__":
    main()
