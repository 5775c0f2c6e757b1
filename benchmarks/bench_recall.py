"""Detector recall per COCO scale on coco128, for the offline detector's variants.

Run: .venv/bin/python benchmarks/bench_recall.py [--data ../shared/data/coco128] [--limit N]

Each variant of :class:`vpagent.tools.offline.detector.SSDCocoDetector` (plain, flip test-time
augmentation, 2x2 tiles, both) detects every COCO class in every photo once, keeping boxes down
to the lowest threshold studied; the figures at higher thresholds filter those boxes. A
prediction matches an unmatched ground-truth box of the same class at IoU >= 0.5 (best score
first, crowd boxes ignored). Reported per variant and threshold: recall for small (< 32^2 px),
medium and large objects (COCO's scales by annotated area), overall recall and precision, F1,
and milliseconds per image. The detector was trained on COCO train2017, which holds these
photos: compare the variants with each other, not with published numbers. Writes the tables
to benchmarks/results/recall.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from coco128_data import add_data_argument  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.images import load_image
from vpagent.tools.offline._image import box_iou

RESULTS = Path(__file__).parent / "results" / "recall.md"
THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
VARIANTS: dict[str, dict[str, object]] = {
    "plain": {"tiles": 0},
    "flip": {"tiles": 0, "flip": True},
    "tiles 2x2": {"tiles": 2},
    "tiles 2x2 + flip": {"tiles": 2, "flip": True},
}
SCALES = (("small", 0, 32**2), ("medium", 32**2, 96**2), ("large", 96**2, float("inf")))


def load_truth(folder: Path) -> tuple[dict[int, Path], dict[int, list[tuple[str, list, float]]]]:
    """Image paths by id, and each image's (class, xyxy box, area) ground truth."""
    data = json.loads((folder / "instances.json").read_text())
    names = {c["id"]: c["name"] for c in data["categories"]}
    paths = {i["id"]: folder / "images" / i["file_name"] for i in data["images"]}
    truth: dict[int, list[tuple[str, list, float]]] = defaultdict(list)
    for ann in data["annotations"]:
        if ann.get("iscrowd"):
            continue
        x, y, w, h = ann["bbox"]
        truth[ann["image_id"]].append(
            (names[ann["category_id"]], [x, y, x + w, y + h], ann["area"])
        )
    return paths, truth


def match(predictions: list, truth: list, threshold: float) -> tuple[list[bool], int]:
    """Which ground-truth boxes a prediction (score >= threshold) finds; false positives."""
    found = [False] * len(truth)
    false_positives = 0
    for cls, box, score in sorted(predictions, key=lambda p: -p[2]):
        if score < threshold:
            continue
        best, best_iou = None, 0.5
        for index, (true_cls, true_box, _) in enumerate(truth):
            if not found[index] and true_cls == cls:
                iou = box_iou(np.array(box), np.array(true_box))
                if iou >= best_iou:
                    best, best_iou = index, iou
        if best is None:
            false_positives += 1
        else:
            found[best] = True
    return found, false_positives


def run_variant(options: dict, paths: dict, truth: dict) -> tuple[dict, float]:
    from vpagent.tools.offline.coco_names import COCO_CLASSES
    from vpagent.tools.offline.detector import SSDCocoDetector

    detector = SSDCocoDetector(score_threshold=min(THRESHOLDS), **options)  # type: ignore[arg-type]
    everything = set(COCO_CLASSES)
    detector._detect([load_image(next(iter(paths.values())))], [everything])  # warm-up
    predictions, seconds = {}, []
    for image_id, path in paths.items():
        pixels = load_image(path)
        started = time.perf_counter()
        found = detector._detect([pixels], [everything])[0]
        seconds.append(time.perf_counter() - started)
        predictions[image_id] = [(c.cls, c.box.tolist(), c.score) for c in found]
    return predictions, 1000 * float(np.median(seconds))


def score(predictions: dict, truth: dict, threshold: float) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    false_positives = 0
    for image_id, objects in truth.items():
        found, fp = match(predictions.get(image_id, []), objects, threshold)
        false_positives += fp
        for (_, _, area), hit in zip(objects, found, strict=True):
            scale = next(name for name, lo, hi in SCALES if lo <= area < hi)
            hits[scale].append(hit)
            hits["all"].append(hit)
    row = {name: float(np.mean(values)) for name, values in hits.items()}
    true_positives = sum(hits["all"])
    row["precision"] = true_positives / max(true_positives + false_positives, 1)
    row["f1"] = 2 * row["precision"] * row["all"] / max(row["precision"] + row["all"], 1e-9)
    row.update({f"n_{name}": len(values) for name, values in hits.items()})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--limit", type=int, default=0, help="first N photos only (0 = all)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if not (args.data / "instances.json").is_file():
        sys.exit(f"no instances.json in {args.data}; pass --data")
    paths, truth = load_truth(args.data)
    if args.limit:
        paths = dict(list(paths.items())[: args.limit])
    truth = {i: truth.get(i, []) for i in paths}
    lines = [
        "| variant | score >= | small | medium | large | all | precision | F1 | ms/image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    counts = ""
    for name in args.variants.split(","):
        predictions, ms = run_variant(VARIANTS[name], paths, truth)
        for threshold in THRESHOLDS:
            row = score(predictions, truth, threshold)
            counts = f"small {row['n_small']}, medium {row['n_medium']}, large {row['n_large']}"
            lines.append(
                f"| {name} | {threshold} | {row['small']:.1%} | {row['medium']:.1%} | "
                f"{row['large']:.1%} | {row['all']:.1%} | {row['precision']:.1%} | "
                f"{row['f1']:.3f} | {ms:.0f} |"
            )
        print("\n".join(lines[-len(THRESHOLDS) :]), flush=True)
    header = (
        f"# Detector recall at IoU 0.5 on coco128 ({len(paths)} photos; objects: {counts})\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at the end. `benchmarks/bench_recall.py`.\n\n"
    )
    RESULTS.write_text(header + "\n".join(lines) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
