"""Referring expressions ("the black horse") on hand-labelled coco128 objects.

Run: .venv/bin/python benchmarks/bench_referring.py [--data ../shared/data/coco128]

Labels: benchmarks/data/coco128_referring.json (15 expressions; the target and the other
objects of its class in the same image, told apart by colour, labelled by looking at the crops).
Two measurements:

- ranking: the annotated boxes of the class, ranked by the matcher's property evidence
  (``property_evidence``); right when the target comes first. Chance is 1/candidates;
- locate: the whole path a program takes, ``image.locate(phrase)`` through the program host
  with the offline pack (the detector finds the class, the host ranks its boxes by the
  property); right when the box it returns overlaps the target at IoU >= 0.5. The row
  "locate, noun only" is the same call without the property (what the host did before), the
  best-scoring box of the class.

Writes the table to benchmarks/results/referring.md.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
from coco128_data import add_data_argument, checked_data  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.config import load_settings
from vpagent.images import load_image
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.offline._image import box_iou
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.referring import split_reference
from vpagent.tools.toolbox import Toolbox

HERE = Path(__file__).parent
LABELS = HERE / "data" / "coco128_referring.json"
RESULTS = HERE / "results" / "referring.md"
IOU = 0.5


def xyxy(bbox: list[float]) -> list[float]:
    x, y, w, h = bbox
    return [x, y, x + w, y + h]


def ranked_first(toolbox: Toolbox, image: np.ndarray, item: dict, boxes: dict) -> bool:
    """Whether the target's annotated box gets the best property evidence of its class."""
    reference = split_reference(item["phrase"])
    scores = {}
    for candidate in item["candidates"]:
        x0, y0, x1, y1 = (round(v) for v in xyxy(boxes[candidate]))
        try:
            scores[candidate] = toolbox.property_evidence(
                image[y0:y1, x0:x1], reference.noun, str(reference.attribute)
            ).score
        except CannotAnswer:  # the part named is not in view in this box
            scores[candidate] = float("-inf")
    return max(scores, key=scores.__getitem__) == item["target"]


def located(host: ProgramHost, name: str, target: list[float]) -> bool:
    """Whether ``locate(name)`` returns a box on the target."""
    height, width = host.pixels.shape[:2]
    args = {"image": host.image_id, "box": [0, 0, width, height], "name": name, "thorough": True}
    try:
        best = host("find", args)[0]["box"]
    except CannotAnswer:
        return False
    return box_iou(np.array(best), np.array(target)) >= IOU


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    args = parser.parse_args()
    checked_data(args.data)
    items = json.loads(LABELS.read_text())["expressions"]
    annotations = json.loads((args.data / "instances.json").read_text())["annotations"]
    boxes = {a["id"]: a["bbox"] for a in annotations}
    toolbox = Toolbox(load_settings().toolbox_config())
    right = {"ranking (annotated boxes)": 0, "locate(phrase)": 0, "locate, noun only": 0}
    chance = 0.0
    for item in items:
        image = load_image(args.data / "images" / item["image"])
        host = ProgramHost(toolbox, image)
        target = xyxy(item["target_bbox"])
        outcome = {
            "ranking (annotated boxes)": ranked_first(toolbox, image, item, boxes),
            "locate(phrase)": located(host, item["phrase"], target),
            "locate, noun only": located(host, split_reference(item["phrase"]).noun, target),
        }
        chance += 1 / len(item["candidates"])
        for key, ok in outcome.items():
            right[key] += ok
        marks = " ".join(f"{key}={'ok' if ok else 'miss'}" for key, ok in outcome.items())
        print(f"{item['image']} '{item['phrase']}': {marks}", flush=True)
    n = len(items)
    lines = ["| method | right | accuracy |", "|---|---|---|"]
    lines += [f"| {key} | {value}/{n} | {value / n:.1%} |" for key, value in right.items()]
    lines.append(f"| chance (1 / candidates) | {chance:.1f}/{n} | {chance / n:.1%} |")
    RESULTS.write_text(
        f"# Referring expressions on {n} hand-labelled coco128 objects\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs. `benchmarks/bench_referring.py`, "
        "offline pack.\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines), f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
