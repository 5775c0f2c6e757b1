"""Batched vs one-at-a-time throughput of the torch backends in tools.hf (CLIP, OWL-ViT).

Random-initialised models are built offline, saved, and loaded through the backends' real
loading code, then timed end to end (pre-processing, forward, post-processing) on images of a
realistic size at the models' real input resolution (CLIP 224 px, OWL-ViT 768 px):

* ``tiny``: 2-layer, 32-wide encoders. Almost no arithmetic per image, so any per-call
  overhead dominates and batching looks better than it will on a real model.
* ``base``: the released ViT-B/32 dimensions (CLIP ViT-B/32, OWL-ViT B/32: 12 layers, 768
  wide) with random weights: the arithmetic a real checkpoint does.

Usage: python benchmarks/bench_hf_batching.py [--sizes tiny,base] [--batch 8] [--repeats 3]
       [--device auto] [--out benchmarks/results/hf_batching.md]
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
sys.path[:0] = [str(ROOT)]

import vpagent  # noqa: E402, F401  (offline environment first)
from tests.fixtures.hf_tiny import byte_level_clip_tokenizer  # noqa: E402
from vpagent.tools.hf.clip import ClipMatcher  # noqa: E402
from vpagent.tools.hf.owl import OwlDetector  # noqa: E402

TEXTS = ["a photo of a cat", "a photo of a dog", "a red car", "a person on a bicycle"]
NAMES = ["cat", "dog", "car", "person"]
OWL_TEXT_POSITIONS = 64  # byte-level tokens of the longest query, with room


def _encoder(width: int, layers: int, heads: int) -> dict:
    return {
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


SIZES = {
    "tiny": {"vision": _encoder(32, 2, 4), "text": _encoder(32, 2, 4), "projection_dim": 32},
    # ViT-B/32 image tower and CLIP text tower, as in openai/clip-vit-base-patch32 and
    # google/owlvit-base-patch32
    "base": {"vision": _encoder(768, 12, 12), "text": _encoder(512, 12, 8), "projection_dim": 512},
}


def _text_config(tokenizer, size: dict, max_positions: int) -> dict:
    return {
        **size["text"],
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "max_position_embeddings": max_positions,
    }


def build_clip(path: Path, size: dict) -> Path:
    import transformers as tf

    tokenizer = byte_level_clip_tokenizer()
    config = tf.CLIPConfig(
        text_config=_text_config(tokenizer, size, 77),
        vision_config={**size["vision"], "image_size": 224, "patch_size": 32},
        projection_dim=size["projection_dim"],
    )
    tf.CLIPModel(config).eval().save_pretrained(path)
    processor = tf.CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    )
    tf.CLIPProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def build_owlvit(path: Path, size: dict) -> Path:
    import transformers as tf

    tokenizer = byte_level_clip_tokenizer()
    # The released OWL-ViT reads 16 BPE tokens ("a photo of a person" is 7); this tokenizer has a
    # token per byte, so its text encoder reads 64 (as tests/fixtures/hf_tiny.py's) or the
    # detector rightly refuses the default query as too long.
    tokenizer.model_max_length = OWL_TEXT_POSITIONS
    config = tf.OwlViTConfig(
        text_config=_text_config(tokenizer, size, OWL_TEXT_POSITIONS),
        vision_config={**size["vision"], "image_size": 768, "patch_size": 32},
        projection_dim=size["text"]["hidden_size"],  # OWL: projection_dim == text hidden size
    )
    tf.OwlViTForObjectDetection(config).eval().save_pretrained(path)
    processor = tf.OwlViTImageProcessor(
        size={"height": 768, "width": 768}, crop_size={"height": 768, "width": 768}
    )
    tf.OwlViTProcessor(image_processor=processor, tokenizer=tokenizer).save_pretrained(path)
    return path


def images(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8) for _ in range(count)]


def timed_pair(first, second, repeats: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """Best (wall, CPU) seconds of two calls over ``repeats`` runs, run alternately.

    Alternating spreads changes in machine load over both; the best run is the one least
    disturbed by other processes (as ``timeit`` advises). CPU seconds (this process, all its
    threads) are much less sensitive to other processes than wall seconds on a shared machine.
    """
    first(), second()  # warm-up
    runs: dict[int, list[tuple[float, float]]] = {0: [], 1: []}
    for _ in range(repeats):
        for index, call in enumerate((first, second)):
            wall, cpu = time.perf_counter(), time.process_time()
            call()
            runs[index].append((time.perf_counter() - wall, time.process_time() - cpu))
    best = [
        (min(w for w, _ in runs[i]), min(c for _, c in runs[i])) for i in (0, 1)
    ]  # fmt: skip
    return best[0], best[1]


def bench(name: str, backend, batch: int, repeats: int) -> dict:
    inputs = images(batch)
    if name == "clip":
        batched = lambda: backend.score_batch(inputs, [TEXTS] * batch)  # noqa: E731
        single = lambda: [backend.scores(image, TEXTS) for image in inputs]  # noqa: E731
    else:
        batched = lambda: backend.detect_batch(inputs, [NAMES] * batch)  # noqa: E731
        single = lambda: [backend.detect(image, NAMES) for image in inputs]  # noqa: E731
    (wall_b, cpu_b), (wall_s, cpu_s) = timed_pair(batched, single, repeats)
    return {
        "batched_ips": batch / wall_b,
        "single_ips": batch / wall_s,
        "speedup": wall_s / wall_b,
        "batched_cpu_ms": 1000 * cpu_b / batch,
        "single_cpu_ms": 1000 * cpu_s / batch,
        "cpu_speedup": cpu_s / cpu_b,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,base")
    parser.add_argument("--models", default="clip,owlvit")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument("--out", type=Path, default=None, help="append the table to this file")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size_name in args.sizes.split(","):
            for model_name in args.models.split(","):
                build = {"clip": build_clip, "owlvit": build_owlvit}[model_name]
                path = build(Path(tmp) / f"{model_name}-{size_name}", SIZES[size_name])
                cls = {"clip": ClipMatcher, "owlvit": OwlDetector}[model_name]
                backend = cls(str(path), device=args.device)
                result = bench(model_name, backend, args.batch, args.repeats)
                rows.append((model_name, size_name, backend.device, result))
                print(
                    f"{model_name:7s} {size_name:5s} {backend.device:5s} "
                    f"batched {result['batched_ips']:8.2f} img/s  "
                    f"one-by-one {result['single_ips']:8.2f} img/s  "
                    f"speedup x{result['speedup']:.2f}  "
                    f"CPU ms/img {result['batched_cpu_ms']:.1f} vs {result['single_cpu_ms']:.1f} "
                    f"(x{result['cpu_speedup']:.2f})",
                    flush=True,
                )
    table = [
        f"Batch of {args.batch} images (640x480), best of {args.repeats} alternating runs "
        f"after a warm-up; load average {os.getloadavg()[0]:.1f} at the end; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.machine()} {platform.system()}.",
        "",
        "| model | size | input | device | batched img/s | one-by-one img/s | wall speedup "
        "| CPU ms/img batched | CPU ms/img one-by-one | CPU speedup |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model_name, size_name, device, r in rows:
        resolution = "224 px" if model_name == "clip" else "768 px"
        table.append(
            f"| {model_name} | {size_name} | {resolution} | {device} | {r['batched_ips']:.2f} | "
            f"{r['single_ips']:.2f} | x{r['speedup']:.2f} | {r['batched_cpu_ms']:.1f} | "
            f"{r['single_cpu_ms']:.1f} | x{r['cpu_speedup']:.2f} |"
        )
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
