"""Tokens the VQA stand-in and the fallback read per question (issue 33, item 4).

    .venv/bin/python benchmarks/bench_scene_prompt.py DATA.jsonl [DATA.jsonl ...] --name NAME

For every item of the datasets, the prompt the offline pack's VQA stand-in builds for it (the
scene description of its photo, as ``SceneVQA`` writes it for that question, inside the VQA
prompt), counted with the embedded planner's own tokenizer (read from its GGUF file, so the
default pack must be installed). ``new_tokens`` leaves out the prompt's start before the
description, the same for every image, which llama.cpp keeps cached: what a ``simple_query``
or a fallback reads on every call. Writes ``benchmarks/results/scene-prompt-NAME.json``:
median, p90 and max tokens per set, and the tokens of every item. Run it in two worktrees
(``cd WORKTREE && .venv/bin/python /path/to/bench_scene_prompt.py ...``) to compare two
versions of the description.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench_tail import percentile  # benchmarks/, beside this script

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PACK = "qwen2.5-coder-1.5b"


def tokenizer() -> Any:
    """The default planner pack's tokenizer, from its GGUF file."""
    from transformers import AutoTokenizer

    from vpagent.llm.packs import status

    found = status(PACK)
    if found.path is None:
        raise SystemExit(f"the {PACK} pack is not installed: {found.pip_command}")
    path = Path(found.path)
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def quantiles(values: list[int]) -> dict[str, float]:
    """n, median, nearest-rank p90, max and mean."""
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p90": percentile(ordered, 0.9),
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }


def measure(datasets: list[Path]) -> dict[str, Any]:
    from vpagent.evaluation.datasets import read_dataset
    from vpagent.images import load_image
    from vpagent.tools.offline.scene import VQA_PROMPT, SceneVQA

    count = tokenizer()
    cached = len(count(VQA_PROMPT.split("{description}")[0])["input_ids"])
    vqa = SceneVQA.offline(lambda prompt: "")  # the prompt is built, never sent
    sets: dict[str, Any] = {}
    for path in datasets:
        items = {}
        for item in read_dataset(path).items:
            prompt = vqa.prompt(load_image(item.image), item.question)
            items[item.id] = len(count(prompt)["input_ids"])
        sets[path.stem] = {
            "prompt_tokens": quantiles(list(items.values())),
            "new_tokens": quantiles([tokens - cached for tokens in items.values()]),
            "items": items,
        }
        print(path.stem, sets[path.stem]["new_tokens"], flush=True)
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--name", required=True, help="results/scene-prompt-NAME.json")
    args = parser.parse_args()
    out = RESULTS / f"scene-prompt-{args.name}.json"
    out.write_text(json.dumps(measure(args.datasets), indent=1) + "\n", encoding="utf-8")
    print(out)


if __name__ == "__main__":
    main()
