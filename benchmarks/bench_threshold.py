"""The offline detector's score threshold vs the questions it answers: count and exist on coco128.

Run: .venv/bin/python benchmarks/bench_threshold.py QUESTIONS.jsonl

QUESTIONS is `vpagent distill questions ../shared/data/coco128/instances.json --out q.jsonl`
(its "How many X are there?" and "Is there a X in the picture?" items, whose answers come from
the annotations). Each question's object is detected once the way `find` does it (default
detector: zoom pass, 2x2 tiles, animal check), keeping boxes down to the lowest threshold
studied; a count is the number of boxes at or above a threshold, "exist" is whether there is
one. Recall and F1 per box are in bench_recall.py; this is what a threshold does to answers.
The detector was trained on COCO train2017, which holds these photos: compare thresholds with
each other, not with published numbers. Writes benchmarks/results/threshold.md.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import defaultdict
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.evaluation.datasets import load_dataset
from vpagent.images import load_image

RESULTS = Path(__file__).parent / "results" / "threshold.md"
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
COUNT = re.compile(r"^How many (.+) are there\?$")
EXIST = re.compile(r"^(?:Is there (?:a|an|any)|Are there any) (.+) in the picture\?$")


def asked_object(question: str) -> tuple[str, str] | None:
    """("count" | "exist", object name) for the two question forms studied, else None."""
    for kind, pattern in (("count", COUNT), ("exist", EXIST)):
        found = pattern.match(question)
        if found:
            return kind, found.group(1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("questions", type=Path)
    args = parser.parse_args()
    if not args.questions.is_file():
        sys.exit(f"{args.questions} does not exist")
    from vpagent.tools.offline.detector import SSDCocoDetector

    detector = SSDCocoDetector(score_threshold=min(THRESHOLDS))
    scores: list[tuple[str, str, list[float]]] = []  # (kind, answer, box scores)
    for item in load_dataset(args.questions):
        asked = asked_object(item.question)
        if asked is None:
            continue
        kind, name = asked
        found = detector.detect(load_image(item.image), [name])
        scores.append((kind, item.answers[0], [d.score for d in found]))
    right: dict[tuple[str, float], int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    over: dict[float, int] = defaultdict(int)
    for kind, answer, box_scores in scores:
        total[kind] += 1
        for threshold in THRESHOLDS:
            n = sum(score >= threshold for score in box_scores)
            said = str(n) if kind == "count" else ("yes" if n else "no")
            right[kind, threshold] += said == answer
            over[threshold] += kind == "count" and n > int(answer)
    lines = [
        "| score >= | count | counts too high | exist | both |",
        "|---|---|---|---|---|",
    ]
    for threshold in THRESHOLDS:
        both = right["count", threshold] + right["exist", threshold]
        lines.append(
            f"| {threshold} | {right['count', threshold] / total['count']:.1%} | "
            f"{over[threshold]} | {right['exist', threshold] / total['exist']:.1%} | "
            f"{both / (total['count'] + total['exist']):.1%} |"
        )
    header = (
        f"# Detector threshold vs answers on coco128 questions ({total['count']} count, "
        f"{total['exist']} exist)\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end. `benchmarks/bench_threshold.py "
        f"{args.questions.name}`.\n\n"
    )
    RESULTS.write_text(header + "\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
