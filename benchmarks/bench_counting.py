"""Counting and detection AP of the offline detector on the coco128 validation photos, before and
after the counting calibration, in one run.

Run: .venv/bin/python benchmarks/bench_counting.py [--data ../shared/data/coco128]

The validation photos are those `vpagent distill export` holds out (seed 0, 20%); the calibration
(`vpagent distill calibrate-counts`) never saw them. Every category on a validation photo whose
instances are all clear by the question generator's rules (no crowd, none faint, at most 8) is
asked as "How many X are there?"; the answer ``image.count(X)`` gives is the number of the
detector's boxes of X. Reported for the detector as it shipped before the calibration (tiles
2x2, NMS IoU 0.5, score >= 0.5) and as calibrated: exact accuracy with its Wilson 95% interval,
MAE, both per size of the true count (1, 2-4, 5+), an exact McNemar test item by item, and the
constant answer "1" for scale; and categories absent from each photo, where the right count is
0 (as many drawn as the generator draws its "no" questions, plus every absent one the
calibration search's loosest setting reports there). Detection AP: pycocotools'
COCOeval over the detector's reported boxes (detect_all, thresholded as shipped) on the same
photos. The questions are also written as a `vpagent eval` dataset
(benchmarks/data/coco128_counts.jsonl) for the end-to-end agent. The detector was trained on
COCO train2017, which holds these photos: absolute figures are optimistic; the before/after
comparison is what the run is for.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from coco128_data import add_data_argument, checked_data  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.distill.coco import load_coco
from vpagent.distill.count_calibration import (
    CachedDetector,
    CountItem,
    Photos,
    count_items,
    detector_counts,
    photo_split,
    score_counts,
    zero_count_items,
)
from vpagent.distill.questions import Rules
from vpagent.evaluation.stats import mcnemar_p
from vpagent.tools.offline.coco_names import COCO_CLASSES
from vpagent.tools.offline.detector import Calibration, SSDCocoDetector

RESULTS = Path(__file__).parent / "results"
DATASET = Path(__file__).parent / "data" / "coco128_counts.jsonl"
SHIPPED_BEFORE = Calibration(score_threshold=0.5, nms_iou=0.5, tiles=2, flip=False)


def write_dataset(items: list[CountItem], data: Path) -> None:
    """The validation count questions as a `vpagent eval` JSONL (image paths relative to it)."""
    rows = []
    for item in items:
        image = os.path.relpath(data / "images" / item.file, DATASET.parent)
        rows.append(
            {
                "id": f"count-{item.image_id}-{item.name.replace(' ', '_')}",
                "image": image,
                "question": item.question,
                "answer": str(item.answer),
                "type": "count",
            }
        )
    DATASET.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def average_precision(
    detector: SSDCocoDetector, data: Path, image_ids: list[int], photos: Photos
) -> dict[str, Any]:
    """COCOeval bbox AP of the detector's reported boxes on ``image_ids``, and ms per photo."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(data / "instances.json"))
    category = {c["name"]: c["id"] for c in truth.loadCats(truth.getCatIds())}
    files = {i["id"]: i["file_name"] for i in truth.loadImgs(image_ids)}
    results = []
    started = time.perf_counter()
    for image_id in image_ids:
        for det in detector.detect_all(photos(files[image_id])):
            x0, y0, x1, y1 = det.box.as_list()
            results.append(
                {
                    "image_id": image_id,
                    "category_id": category[det.label],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": det.score,
                }
            )
    seconds = time.perf_counter() - started
    with contextlib.redirect_stdout(io.StringIO()):
        found = truth.loadRes(results) if results else COCO()
        scorer = COCOeval(truth, found, "bbox")
        scorer.params.imgIds = image_ids
        scorer.evaluate()
        scorer.accumulate()
        scorer.summarize()
    names = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")
    return {
        **{name: round(float(v), 4) for name, v in zip(names, scorer.stats[:6], strict=True)},
        "AR100": round(float(scorer.stats[8]), 4),
        "boxes": len(results),
        "ms_per_photo": round(1000 * seconds / len(image_ids), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    data = checked_data(parser.parse_args().data)
    dataset = load_coco(data / "instances.json")
    split = photo_split(dataset, data / "images")
    items = count_items(dataset, split.validation, Rules())
    write_dataset(items, data)
    photos = Photos(data / "images")
    absent = zero_count_items(dataset, split.validation, CachedDetector(), photos)
    truths = [item.answer for item in items]
    detectors = {
        "before": SSDCocoDetector(calibration=SHIPPED_BEFORE),
        "after": SSDCocoDetector(),
    }
    report: dict[str, Any] = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, shared with other jobs (busy)",
        "data": str(data),
        "validation_photos": len(split.validation),
        "train_photos": len(split.train),
        "settings": {name: d.calibration.model_dump() for name, d in detectors.items()},
        "constant_1": score_counts([1] * len(items), truths),
    }
    answers = {}
    for name, detector in detectors.items():
        answers[name] = detector_counts(detector, items, photos)
        report[name] = {
            "counts": score_counts(answers[name], truths),
            "absent": score_counts(detector_counts(detector, absent, photos), [0] * len(absent)),
            "ap": average_precision(detector, data, [i.id for i in split.validation], photos),
        }
        print(name, json.dumps(report[name]), flush=True)
    right = {name: [a == t for a, t in zip(answers[name], truths, strict=True)] for name in answers}
    only_before = sum(b and not a for b, a in zip(right["before"], right["after"], strict=True))
    only_after = sum(a and not b for b, a in zip(right["before"], right["after"], strict=True))
    report["mcnemar"] = {
        "only_before": only_before,
        "only_after": only_after,
        "p": mcnemar_p(only_before, only_after),
    }
    report["items"] = [
        {
            "image": item.file,
            "question": item.question,
            "answer": item.answer,
            "before": answers["before"][index],
            "after": answers["after"][index],
        }
        for index, item in enumerate(items)
    ]
    assert set(COCO_CLASSES) >= {item.name for item in items}
    (RESULTS / "counting.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "counting.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def _pct(score: dict[str, Any]) -> str:
    if not score["n"]:
        return "n 0"
    low, high = score["interval_95"]
    return (
        f"{score['accuracy']:.0%} [{low:.0%}, {high:.0%}] (n {score['n']}), MAE {score['mae']:.2f}"
    )


def markdown(report: dict[str, Any]) -> str:
    """The report as a small Markdown page."""
    lines = [
        "# Counting on the coco128 validation photos (benchmarks/bench_counting.py)",
        "",
        f"{report['validation_photos']} validation photos (the `distill export` split, seed 0); "
        f"the calibration used the other {report['train_photos']}. {report['machine']}.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| settings | {_settings(report['settings']['before'])} | "
        f"{_settings(report['settings']['after'])} |",
        f"| exact count, all | {_pct(report['before']['counts'])} | "
        f"{_pct(report['after']['counts'])} |",
    ]
    for size in report["after"]["counts"]["per_size"]:
        lines.append(
            f"| count size {size} | {_pct(report['before']['counts']['per_size'][size])} | "
            f"{_pct(report['after']['counts']['per_size'][size])} |"
        )
    lines.append(
        f"| absent category counted 0 | {_pct(report['before']['absent'])} | "
        f"{_pct(report['after']['absent'])} |"
    )
    for key in ("AP", "AP50", "AR100", "boxes", "ms_per_photo"):
        lines.append(f"| {key} | {report['before']['ap'][key]} | {report['after']['ap'][key]} |")
    m = report["mcnemar"]
    lines += [
        "",
        f"Item by item: right only before {m['only_before']}, only after {m['only_after']}, "
        f'exact McNemar p = {m["p"]:.3g}. The constant answer "1" scores '
        f"{_pct(report['constant_1'])}.",
        "",
    ]
    return "\n".join(lines)


def _settings(settings: dict[str, Any]) -> str:
    per_class = ", ".join(f"{k} {v}" for k, v in sorted(settings["class_thresholds"].items()))
    return (
        f"tiles {settings['tiles']}, flip {settings['flip']}, NMS {settings['nms_iou']}, "
        f"score >= {settings['score_threshold']}" + (f" ({per_class})" if per_class else "")
    )


if __name__ == "__main__":
    sys.exit(main())
