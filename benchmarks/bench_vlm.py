"""What the VLM backends cost around the model itself (CPU, no real VLM weights here).

* ``encode``: downscaling and JPEG/base64-encoding one dev photo (``--image``) for
  ``openai-vlm``, and the request body size, at several ``max_side`` values.
* ``endpoint``: 8 questions sent through the real LangChain client to a loopback fake
  endpoint that takes ``--latency`` seconds per request (standing in for the model), with
  ``concurrency`` 1, 4 and 8: the batch's wall time.
* ``transformers``: the ``vlm`` backend on tiny random LLaVA and Idefics3 models, 8 questions
  in one ``generate`` vs one at a time (the toolbox's micro-batching vs none).

Usage: python benchmarks/bench_vlm.py [--latency 0.25] [--repeats 3] [--image PHOTO]
       [--out benchmarks/results/vlm.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import vpagent  # noqa: E402, F401  (offline environment first)
from benchmarks.machine import cpu_model  # noqa: E402
from vpagent.tools.hf.vlm import TransformersVLM  # noqa: E402
from vpagent.tools.registry import build_specialist  # noqa: E402
from vpagent.tools.remote_vlm import encode_image  # noqa: E402
from vpagent.tools.vlm_roles import forget_engines  # noqa: E402

BATCH = 8


def _best(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def bench_encode(image_path: Path, repeats: int) -> list[str]:
    from PIL import Image

    photo = np.asarray(Image.open(image_path).convert("RGB"))
    height, width = photo.shape[:2]
    rows = [
        f"{image_path.name}, {width}x{height}:",
        "",
        "| max_side | encode ms | body KB |",
        "|---|---|---|",
    ]
    for side in (1024, 768, 512, 384):
        seconds = _best(lambda side=side: encode_image(photo, side), repeats * 5)
        size_kb = len(encode_image(photo, side)) / 1024
        rows.append(f"| {side} | {seconds * 1000:.1f} | {size_kb:.0f} |")
    return rows


def bench_endpoint(latency: float, repeats: int) -> list[str]:
    from vlm_fake_server import FakeVLMServer

    crops = [np.full((120, 160, 3), 40 * i % 255, np.uint8) for i in range(BATCH)]
    rows = ["| concurrency | 8 questions, s | per question, s |", "|---|---|---|"]
    with FakeVLMServer() as fake:
        fake.mode, fake.delay = "slow", latency
        for concurrency in (1, 4, 8):
            forget_engines()
            vqa = build_specialist(
                "vqa",
                "openai-vlm",
                model="fake",
                options={"base_url": fake.base_url, "concurrency": concurrency},
            )
            vqa.answer(crops[0], "warm up?")
            seconds = _best(lambda vqa=vqa: vqa.answer_batch(crops, ["what?"] * BATCH), repeats)
            rows.append(f"| {concurrency} | {seconds:.2f} | {seconds / BATCH:.3f} |")
    return rows


def bench_transformers(repeats: int) -> list[str]:
    from vlm_tiny import build_idefics3, build_llava

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(BATCH)]
    prompts = [f"what is in the image? {i}" for i in range(BATCH)]
    rows = ["| model | one at a time, s | batched, s | speed-up |", "|---|---|---|---|"]
    for name, build in (("llava (tiny)", build_llava), ("idefics3 (tiny)", build_idefics3)):
        with tempfile.TemporaryDirectory() as folder:
            engine = TransformersVLM(str(build(Path(folder))), device="cpu", max_new_tokens=8)
            engine.generate(images[:2], prompts[:2])  # load and warm up
            single = _best(
                lambda e=engine: [
                    e.generate([i], [p]) for i, p in zip(images, prompts, strict=True)
                ],
                repeats,
            )
            batched = _best(lambda e=engine: e.generate(images, prompts), repeats)
        rows.append(f"| {name} | {single:.3f} | {batched:.3f} | {single / batched:.1f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--image", type=Path, default=ROOT.parent / "shared/data/images/two_dogs.jpg"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/vlm.md")
    args = parser.parse_args()
    if not args.image.is_file():
        parser.error(f"no photo at {args.image}; pass --image PHOTO")
    sections = [
        "# VLM backends: cost around the model",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores ({platform.machine()}); best of "
        f"{args.repeats}. Command: `python benchmarks/bench_vlm.py`.",
        "",
        "## openai-vlm: downscaling and encoding one photo (JPEG, base64)",
        *bench_encode(args.image, args.repeats),
        "",
        f"## openai-vlm: 8 questions to an endpoint taking {args.latency} s per request",
        *bench_endpoint(args.latency, args.repeats),
        "",
        "## vlm (transformers): 8 questions, tiny random models, CPU",
        *bench_transformers(args.repeats),
    ]
    text = "\n".join(sections).rstrip() + "\n"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
