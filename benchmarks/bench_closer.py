"""Which of two marked points is closer to the camera: the marks finder and the depth stand-in on
hand-labelled coco128 photos.

Run: .venv/bin/python benchmarks/bench_closer.py [--data ../shared/data/coco128] [--work DIR]

benchmarks/data/coco128_closer.jsonl holds 35 pairs of points on 21 coco128 photos, each point
named (its ``note``) and the closer one labelled by looking at the photo, as the relations set
was made; the closer point is A in half of the pairs. Nothing in the marks finder or the depth
stand-in was tuned on them. The script draws each pair as circles labelled A and B (in whichever
of red, blue, magenta and green the photo has least of, as a person marking a photo would), saves
the marked photos and a `vpagent eval` dataset of them under ``--work``, and answers each pair
three ways with the offline pack's detector and depth stand-in, no planner involved:

- ``drawn``: the few-shot program's steps on the marked photo: image.mark("A"), image.mark("B")
  (the marks finder) and point_depth() of each (ground contact of the object under the point);
- ``given``: the same with the points given as data on the unmarked photo;
- ``row only``: the plain ground-plane rule, the lower point is closer (the stand-in before).

Reported: accuracy with its Wilson 95% interval, the share of each answer (none should exceed
80%), and the marks found. Writes benchmarks/results/closer.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from coco128_data import add_data_argument, checked_data  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.config import load_settings
from vpagent.evaluation.stats import wilson
from vpagent.images import load_image
from vpagent.tools.offline.depth import VerticalPositionDepth
from vpagent.tools.offline.detector import SSDCocoDetector
from vpagent.tools.offline.marks import HUES, MIN_SATURATION, MIN_VALUE
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import Mark

HERE = Path(__file__).parent
DATASET = HERE / "data" / "coco128_closer.jsonl"
RESULTS = HERE / "results" / "closer.json"
COLORS = {"red": (255, 0, 0), "blue": (0, 0, 255), "magenta": (255, 0, 255), "green": (0, 200, 0)}


def least_present(rgb: np.ndarray) -> str:
    """The mark colour the photo has fewest vivid pixels of."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    vivid = (hsv[:, :, 1] >= MIN_SATURATION) & (hsv[:, :, 2] >= MIN_VALUE)
    counts = {}
    for name in COLORS:
        band = np.zeros(vivid.shape, dtype=bool)
        for low, high in HUES[name]:
            band |= (hsv[:, :, 0] >= low) & (hsv[:, :, 0] <= high)
        counts[name] = int((vivid & band).sum())
    return min(counts, key=counts.__getitem__)


def draw_marks(rgb: np.ndarray, marks: list[dict[str, Any]]) -> np.ndarray:
    """Circles labelled A and B at the points, the label beside each (inside the picture)."""
    image = rgb.copy()
    color = COLORS[least_present(rgb)]
    width = image.shape[1]
    for mark in marks:
        x, y = (int(v) for v in mark["point"])
        cv2.circle(image, (x, y), 14, color, 3, cv2.LINE_AA)
        tx = x + 18 if x + 45 < width else x - 40
        ty = max(y - 8, 24)
        cv2.putText(
            image, mark["label"], (tx, ty), cv2.FONT_HERSHEY_SIMPLEX, 0.9, color, 3, cv2.LINE_AA
        )
    return image


def closer(host: ProgramHost, image: np.ndarray) -> tuple[str | None, int]:
    """The few-shot program's answer ("A" or "B"; None when a mark is missing), marks found."""
    whole = {"image": host.image_id, "box": [0, 0, image.shape[1], image.shape[0]]}
    found = {hit["label"]: hit for hit in host("marks", whole)}
    if "A" not in found or "B" not in found:
        return None, len(found.keys() & {"A", "B"})
    depth = {
        label: host("point_depth", {**whole, "box": found[label]["box"]}) for label in ("A", "B")
    }
    return ("A" if depth["A"] < depth["B"] else "B"), 2


def summary(answers: list[str | None], truths: list[str]) -> dict[str, Any]:
    n = len(truths)
    right = sum(a == t for a, t in zip(answers, truths, strict=True))
    shares = {label: sum(a == label for a in answers) / n for label in ("A", "B")}
    shares["none"] = sum(a is None for a in answers) / n
    return {
        "n": n,
        "correct": right,
        "accuracy": right / n,
        "interval_95": list(wilson(right, n)),
        "answer_shares": shares,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_argument(parser)
    parser.add_argument("--work", type=Path, default=Path("/tmp/vpagent-closer"))
    args = parser.parse_args()
    data = checked_data(args.data)
    rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
    (args.work / "images").mkdir(parents=True, exist_ok=True)
    specialists = {"detector": SSDCocoDetector(), "depth": VerticalPositionDepth()}
    toolbox = Toolbox(load_settings().toolbox_config(), specialists=specialists)
    answers: dict[str, list[str | None]] = {"drawn": [], "given": [], "row only": []}
    marks_found = 0
    eval_rows = []
    items = []
    for row in rows:
        photo = load_image(data / "images" / Path(row["image"]).name)
        marked = draw_marks(photo, row["marks"])
        path = args.work / "images" / f"{row['id']}.png"
        cv2.imwrite(str(path), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
        drawn, found = closer(ProgramHost(toolbox, marked), marked)
        marks_found += found
        given_marks = [Mark.given(m["label"], point=m["point"]) for m in row["marks"]]
        given, _ = closer(ProgramHost(toolbox, photo, marks=given_marks), photo)
        (ya, yb) = (m["point"][1] for m in row["marks"])
        row_only = "A" if ya > yb else "B"
        for name, answer in (("drawn", drawn), ("given", given), ("row only", row_only)):
            answers[name].append(answer)
        items.append({"id": row["id"], "truth": row["answer"], "drawn": drawn, "given": given,
                      "row only": row_only, "note": row["note"]})  # fmt: skip
        eval_rows.append(
            {
                "id": row["id"],
                "image": os.path.relpath(path, args.work),
                "question": row["question"],
                "choices": row["choices"],
                "answer": row["answer"],
                "type": "closer",
            }
        )
    (args.work / "closer.jsonl").write_text("".join(json.dumps(r) + "\n" for r in eval_rows))
    truths = [row["answer"] for row in rows]
    report = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "dataset": str(DATASET.relative_to(HERE.parent)),
        "photos": len({row["image"] for row in rows}),
        "marks_found": {"found": marks_found, "drawn": 2 * len(rows)},
        **{name: summary(values, truths) for name, values in answers.items()},
        "items": items,
    }
    RESULTS.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for name in answers:
        r = report[name]
        low, high = r["interval_95"]
        print(f"{name}: {r['correct']}/{r['n']} = {r['accuracy']:.0%} [{low:.0%}, {high:.0%}], "
              f"answers {r['answer_shares']}")  # fmt: skip
    print(f"marks found {marks_found}/{2 * len(rows)}; eval dataset {args.work / 'closer.jsonl'}")


if __name__ == "__main__":
    main()
