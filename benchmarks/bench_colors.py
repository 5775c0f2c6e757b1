"""Colour naming accuracy on hand-labelled coco128 objects, per method.

Run: .venv/bin/python benchmarks/bench_colors.py [--data ../shared/data/coco128]

Labels: benchmarks/data/coco128_colors.json (47 objects; each lists the colour names a person
would accept, labelled by looking at the crops). A method is right on an object when the
dominant colour it names is one of them. Methods:

- crop: the box crop, centre-weighted (what verify_property and best_text_match saw before);
- box + ring: the box in the whole image, with colours commoner in a ring around it discounted
  (what the scene description uses);
- mask: the object's own pixels, cut by GrabCut inside the crop (``object_distribution``).

Writes the table to benchmarks/results/colors.md.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from coco128_data import add_data_argument, checked_data  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.images import load_image
from vpagent.tools.offline.colors import color_distribution, object_distribution
from vpagent.tools.types import Box

HERE = Path(__file__).parent
LABELS = HERE / "data" / "coco128_colors.json"
RESULTS = HERE / "results" / "colors.md"

Method = Callable[[np.ndarray, Box, str], dict[str, float]]


def crop_of(image: np.ndarray, box: Box) -> np.ndarray:
    return image[int(box.y0) : int(np.ceil(box.y1)), int(box.x0) : int(np.ceil(box.x1))]


METHODS: dict[str, Method] = {
    "crop": lambda image, box, name: color_distribution(crop_of(image, box), object_name=name),
    "box + ring": lambda image, box, name: color_distribution(image, box, object_name=name),
    "mask": lambda image, box, name: object_distribution(crop_of(image, box), name),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    args = parser.parse_args()
    checked_data(args.data)
    objects = json.loads(LABELS.read_text())["objects"]
    images = {o["image"]: load_image(args.data / "images" / o["image"]) for o in objects}
    lines = ["| method | right | accuracy | ms/object (median) |", "|---|---|---|---|"]
    for method_name, method in METHODS.items():
        right, seconds, misses = 0, [], []
        for obj in objects:
            x, y, w, h = obj["bbox"]
            box = Box(x0=x, y0=y, x1=x + w, y1=y + h)
            started = time.perf_counter()
            shares = method(images[obj["image"]], box, obj["category"])
            seconds.append(time.perf_counter() - started)
            named = max(shares, key=shares.__getitem__)
            if named in obj["colors"]:
                right += 1
            else:
                misses.append(f"{obj['category']} {obj['id']}: {named} (want {obj['colors']})")
        ms = 1000 * float(np.median(seconds))
        lines.append(
            f"| {method_name} | {right}/{len(objects)} | {right / len(objects):.1%} | {ms:.1f} |"
        )
        print(lines[-1], "\n  misses:", "; ".join(misses), flush=True)
    RESULTS.write_text(
        f"# Colour naming on {len(objects)} hand-labelled coco128 objects\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs. `benchmarks/bench_colors.py`.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
