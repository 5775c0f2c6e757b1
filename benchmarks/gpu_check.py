"""The GPU check behind scripts/gpu-check.sh: tiny-model backends in half precision, batching
throughput, a few student training steps; a markdown report of it all.

1. Agreement: every tools.hf backend on its tiny random-init model (tests/fixtures), in float16
   and bfloat16 on CUDA (float32 on the CPU): one batch of images of mixed shapes against the
   same images one at a time, within the tolerances of :data:`TOLERANCES`.
2. Throughput: images per second of CLIP and OWL-ViT (benchmarks/bench_hf_batching.py's
   models: ViT-B/32 dimensions on CUDA, the tiny ones on the CPU) at batch 1, 8 and 32.
3. Training: a few LoRA steps of a tiny LLaVA student through ``vpagent distill train``'s code
   (bf16 on a GPU that has it; two processes when two GPUs are visible).

Usage: python benchmarks/gpu_check.py --device cuda|cpu --out REPORT.md
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import vpagent  # noqa: E402, F401  (offline environment first)
from tests.fixtures import hf_tiny  # noqa: E402
from tests.fixtures.hf_tiny import test_image  # noqa: E402
from vpagent.tools.types import Box  # noqa: E402

IMAGES = [
    test_image(72, 40),
    test_image(40, 88, seed=1),
    test_image(9, 13, seed=2),
    test_image(480, 640, seed=3),
]
SAME_SHAPE = [test_image(48, 64, seed=s) for s in range(4)]  # Grounding DINO pads mixed shapes
# largest allowed gap between batched and one-at-a-time results, per kind of output and dtype:
# scores (absolute), boxes (fraction of the image's longer side), depth (fraction of the map's
# range), masks (1 - IoU), texts (fraction of answers that differ: greedy decoding of a random
# model can flip at a near-tie)
TOLERANCES: dict[str, dict[str, float]] = {
    "float32": {"scores": 1e-4, "boxes": 1e-4, "depth": 1e-3, "masks": 0.01, "texts": 0.0},
    "float16": {"scores": 1e-2, "boxes": 1e-2, "depth": 1e-2, "masks": 0.05, "texts": 0.25},
    "bfloat16": {"scores": 3e-2, "boxes": 2e-2, "depth": 3e-2, "masks": 0.1, "texts": 0.25},
}


@dataclass
class Agreement:
    backend: str
    dtype: str
    kind: str
    gap: float
    tolerance: float
    seconds: float

    @property
    def ok(self) -> bool:
        return self.gap <= self.tolerance


# --------------------------------------------------------------------------- gaps


def _detection_gap(batched: list, single: list, images: list[np.ndarray]) -> float:
    """Worst score gap (sorted scores) or box gap (nearest box, over the image's longer side)."""
    worst = 0.0
    for a, b, image in zip(batched, single, images, strict=True):
        if len(a) != len(b):
            return math.inf
        if not a:
            continue
        scores = np.abs(np.sort([d.score for d in a]) - np.sort([d.score for d in b]))
        boxes_a = np.array([d.box.as_list() for d in a])
        boxes_b = np.array([d.box.as_list() for d in b])
        nearest = np.abs(boxes_a[:, None, :] - boxes_b[None, :, :]).max(-1).min(-1)
        worst = max(worst, float(scores.max()), float(nearest.max()) / max(image.shape[:2]))
    return worst


def _score_gap(batched: list, single: list, images: list) -> float:
    return max(
        float(np.max(np.abs(np.subtract(a, b)))) for a, b in zip(batched, single, strict=True)
    )


def _depth_gap(batched: list, single: list, images: list) -> float:
    return max(
        float(np.abs(a - b).max() / max(np.ptp(b), 1e-12))
        for a, b in zip(batched, single, strict=True)
    )


def _mask_gap(batched: list, single: list, images: list) -> float:
    worst = 0.0
    for a, b in zip(batched, single, strict=True):
        union = np.logical_or(a.pixels, b.pixels).sum()
        iou = np.logical_and(a.pixels, b.pixels).sum() / union if union else 1.0
        worst = max(worst, 1.0 - float(iou))
    return worst


def _text_gap(batched: list, single: list, images: list) -> float:
    return sum(a != b for a, b in zip(batched, single, strict=True)) / len(batched)


# --------------------------------------------------------------------------- backends


@dataclass
class Case:
    """One backend: how to build its tiny model, the backend, and one batched call."""

    name: str
    kind: str
    build: Callable[[Path], Any]
    backend: Callable[[str, str, str], Any]  # (weights, device, dtype) -> backend
    call: Callable[[Any, list[np.ndarray], list[int]], list]  # the images' indices pick prompts
    gap: Callable[[list, list, list], float]
    images: list[np.ndarray]


def _hf(module: str, cls: str, **options: Any) -> Callable[[str, str, str], Any]:
    def make(weights: str, device: str, dtype: str) -> Any:
        import importlib

        backend = getattr(importlib.import_module(f"vpagent.tools.hf.{module}"), cls)
        return backend(weights, device=device, dtype=dtype, **options)

    return make


def _segment_anything(weights: str, device: str, dtype: str) -> Any:
    from segment_anything import sam_model_registry

    from vpagent.tools.hf.segment_anything import SamPredictorSegmenter

    sam_model_registry[hf_tiny.SEGMENT_ANYTHING_TINY_TYPE] = hf_tiny.build_tiny_segment_anything
    return SamPredictorSegmenter(
        weights, device=device, dtype=dtype, model_type=hf_tiny.SEGMENT_ANYTHING_TINY_TYPE
    )


def _vlm(weights: str, device: str, dtype: str) -> Any:
    from vpagent.tools.hf.vlm import TransformersVLM

    return TransformersVLM(weights, device=device, dtype=dtype, max_new_tokens=6)


NAMES = ["cat", "red car"]
QUESTIONS = ["what color is the car?", "how many dogs?", "is it red?", "what is in the image?"]
BOXES = [None, Box.of([2, 2, 30, 30]), None, Box.of([50, 40, 400, 300])]
POINTS = [(10.0, 20.0), None, (5.0, 4.0), None]
DETECT = {"threshold": 0.0, "nms_iou": None}


def _detect(backend: Any, images: list, index: list[int]) -> list:
    return backend.detect_batch(images, [NAMES] * len(images))


def _segment(backend: Any, images: list, index: list[int]) -> list:
    return backend.segment_batch(images, [BOXES[k] for k in index], [POINTS[k] for k in index])


CASES = [
    Case(
        "owlv2",
        "boxes",
        lambda p: hf_tiny.build_owl(p, version=2),
        _hf("owl", "OwlDetector", **DETECT),
        _detect,
        _detection_gap,
        IMAGES,
    ),
    Case(
        "grounding-dino",
        "boxes",
        hf_tiny.build_grounding_dino,
        _hf("grounding_dino", "GroundingDinoDetector", **DETECT),
        _detect,
        _detection_gap,
        SAME_SHAPE,
    ),
    Case(
        "clip",
        "scores",
        hf_tiny.build_clip,
        _hf("clip", "ClipMatcher"),
        lambda b, i, k: b.score_batch(i, [["a cat", "a red car", "a dog"]] * len(i)),
        _score_gap,
        IMAGES,
    ),
    Case(
        "siglip",
        "scores",
        hf_tiny.build_siglip,
        _hf("clip", "ClipMatcher"),
        lambda b, i, k: b.score_batch(i, [["a cat", "a red car"]] * len(i)),
        _score_gap,
        IMAGES,
    ),
    Case(
        "blip",
        "texts",
        hf_tiny.build_blip,
        _hf("blip", "BlipCaptioner", max_new_tokens=8),
        lambda b, i, k: b.caption_batch(i),
        _text_gap,
        IMAGES,
    ),
    Case(
        "blip-vqa",
        "texts",
        lambda p: hf_tiny.build_blip(p, task="vqa"),
        _hf("blip", "BlipVQA", max_new_tokens=6),
        lambda b, i, k: b.answer_batch(i, [QUESTIONS[j] for j in k]),
        _text_gap,
        IMAGES,
    ),
    Case(
        "dpt",
        "depth",
        hf_tiny.build_dpt,
        _hf("depth", "DptDepth"),
        lambda b, i, k: b.depth_batch(i),
        _depth_gap,
        IMAGES,
    ),
    Case(
        "depth-anything",
        "depth",
        hf_tiny.build_depth_anything,
        _hf("depth", "DptDepth"),
        lambda b, i, k: b.depth_batch(i),
        _depth_gap,
        IMAGES,
    ),
    Case(
        "sam-hf",
        "masks",
        hf_tiny.build_sam_hf,
        _hf("sam", "HFSamSegmenter"),
        _segment,
        _mask_gap,
        IMAGES,
    ),
    Case(
        "sam",
        "masks",
        lambda p: hf_tiny.save_tiny_segment_anything(p / "sam_tiny.pth"),
        _segment_anything,
        _segment,
        _mask_gap,
        IMAGES,
    ),
    Case(
        "yolo",
        "boxes",
        lambda p: hf_tiny.build_yolo(p / "yolo.pt"),
        _hf("yolo", "YoloDetector", conf=0.0, imgsz=128, max_det=20),
        lambda b, i, k: b.detect_batch(i, [["person", "car"]] * len(i)),
        _detection_gap,
        IMAGES,
    ),
    Case(
        "vlm-llava",
        "texts",
        lambda p: _build_llava(p),
        _vlm,
        lambda b, i, k: b.generate(i, [QUESTIONS[j] for j in k]),
        _text_gap,
        IMAGES,
    ),
]


def _build_llava(path: Path) -> Path:
    from tests.fixtures.vlm_tiny import build_llava

    return build_llava(path)


def agreement(case: Case, folder: Path, device: str, dtype: str) -> Agreement:
    weights = str(case.build(folder))
    backend = case.backend(weights, device, dtype)
    started = time.perf_counter()
    batched = case.call(backend, case.images, list(range(len(case.images))))
    single = [case.call(backend, [image], [k])[0] for k, image in enumerate(case.images)]
    gap = case.gap(batched, single, case.images)
    seconds = time.perf_counter() - started
    return Agreement(case.name, dtype, case.kind, gap, TOLERANCES[dtype][case.kind], seconds)


# --------------------------------------------------------------------------- throughput


def throughput(device: str, batches: list[int], size: str, repeats: int) -> list[tuple]:
    """(model, batch, images per second) of the batching benchmark's CLIP and OWL-ViT."""
    import bench_hf_batching as bench

    from vpagent.tools.hf.clip import ClipMatcher
    from vpagent.tools.hf.owl import OwlDetector

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build, cls in (
            ("clip", bench.build_clip, ClipMatcher),
            ("owlvit", bench.build_owlvit, OwlDetector),
        ):
            backend = cls(str(build(Path(tmp) / name, bench.SIZES[size])), device=device)
            for batch in batches:
                images = bench.images(batch)
                _bench_call(backend, images)  # warm-up
                best = min(_timed(backend, images, device) for _ in range(repeats))
                rows.append((f"{name} ({size})", batch, batch / best))
    return rows


def _bench_call(backend: Any, images: list[np.ndarray]) -> None:
    import bench_hf_batching as bench

    if hasattr(backend, "score_batch"):
        backend.score_batch(images, [bench.TEXTS] * len(images))
    else:
        backend.detect_batch(images, [bench.NAMES] * len(images))


def _timed(backend: Any, images: list[np.ndarray], device: str) -> float:
    import torch

    started = time.perf_counter()
    _bench_call(backend, images)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - started


# --------------------------------------------------------------------------- training


def training(device: str, steps: int) -> dict[str, Any]:
    """A few LoRA steps of a tiny LLaVA student on a synthetic 8-record export."""
    import torch
    from PIL import Image

    from tests.fixtures.student_tiny import (
        TRAIN_ITEMS,
        VALIDATION_ITEMS,
        build_export,
        build_tiny_llava,
    )
    from vpagent.distill.student.launch import launch
    from vpagent.distill.student.train import TrainOptions, train

    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp) / "photos"
        photos.mkdir()
        for seed, (photo, *_) in enumerate([*TRAIN_ITEMS, *VALIDATION_ITEMS]):
            Image.fromarray(test_image(96, 128, seed=seed)).save(photos / photo)
        export = build_export(Path(tmp) / "export", photos)
        options = TrainOptions(
            data=export,
            out=Path(tmp) / "out",
            student=str(build_tiny_llava(Path(tmp) / "base")),
            max_steps=steps,
            batch_size=8,
            lr=5e-3,
            save_steps=10**6,
            device=device,
        )
        gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
        result = launch(options, nproc=2) if gpus >= 2 else train(options, progress=False)
    bf16 = device.startswith("cuda") and torch.cuda.is_bf16_supported()
    return {
        "precision": "bf16" if bf16 else ("fp16" if device.startswith("cuda") else "fp32"),
        "processes": result.processes,
        "steps": result.steps,
        "first loss": result.losses[0][1] if result.losses else float("nan"),
        "last loss": result.losses[-1][1] if result.losses else float("nan"),
        "samples/s": result.samples_per_second,
        "seconds": result.seconds,
    }


# --------------------------------------------------------------------------- report


def environment(device: str) -> list[str]:
    import torch
    import transformers

    lines = [
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    ]
    try:
        import ultralytics

        lines[0] += f", ultralytics {ultralytics.__version__}"
    except ImportError:
        pass
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        lines.append(
            f"- device: {props.name}, {props.total_memory / 1024**3:.0f} GiB, "
            f"{torch.cuda.device_count()} visible, CUDA {torch.version.cuda}, "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}"
        )
    else:
        lines.append(f"- device: CPU ({platform.machine()}), {torch.get_num_threads()} threads")
    return lines


def report(
    device: str,
    env: list[str],
    rows: list[Agreement],
    speed: list[tuple],
    student: dict[str, Any],
    seconds: float,
) -> str:
    lines = [
        f"# GPU check ({'CUDA' if device.startswith('cuda') else 'CPU, small'})",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {seconds:.0f} s in all.",
        "",
        *env,
        "",
        "## Batched vs one at a time",
        "",
        "Tiny random-init models (tests/fixtures); images of mixed shapes (portrait, "
        "landscape, 9x13, 640x480; Grounding DINO: four of one shape, as it pads mixed "
        "ones by design).",
        "",
        "| backend | dtype | output | gap | tolerance | ok | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.backend} | {r.dtype} | {r.kind} | {r.gap:.2e} | {r.tolerance:g} | "
            f"{'yes' if r.ok else '**no**'} | {r.seconds:.1f} |"
        )
    lines += [
        "",
        "## Batching throughput (images per second, best of the repeats)",
        "",
        "| model | batch | images/s |",
        "|---|---|---|",
    ]
    lines += [f"| {model} | {batch} | {ips:.1f} |" for model, batch, ips in speed]
    lines += [
        "",
        "## Student training (tiny LLaVA, LoRA, 8 records)",
        "",
        "| " + " | ".join(student) + " |",
        "|" + "---|" * len(student),
        "| "
        + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in student.values())
        + " |",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True, help="the markdown report to write")
    args = parser.parse_args()
    import torch

    started = time.perf_counter()
    env = environment(args.device)
    cuda = args.device.startswith("cuda")
    dtypes = ["float16", "bfloat16"] if cuda else ["float32"]
    if cuda and not torch.cuda.is_bf16_supported():
        dtypes.remove("bfloat16")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            for dtype in dtypes:
                row = agreement(case, Path(tmp) / f"{case.name}-{dtype}", args.device, dtype)
                print(
                    f"{row.backend:16s} {row.dtype:9s} gap {row.gap:.2e} "
                    f"(tolerance {row.tolerance:g}) {'ok' if row.ok else 'DIFFERS'}",
                    flush=True,
                )
                rows.append(row)
    speed = throughput(args.device, [1, 8, 32], "base" if cuda else "tiny", 3 if cuda else 1)
    student = training(args.device, steps=10 if cuda else 3)
    text = report(args.device, env, rows, speed, student, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
