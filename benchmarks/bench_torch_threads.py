"""Planning time next to torch's thread pool (issue 33): does a torch op slow llama.cpp?

    .venv/bin/python benchmarks/bench_torch_threads.py [--questions 12] [--rounds 2]

Each setting runs in a fresh process: the embedded planner (default pack, prompt prefix
warmed), then one action in the same process, then the same questions planned one by one (the
first ``--questions`` of the coco128 relations set). Settings: ``cold`` (nothing), ``minilm-1``
(the offline MiniLM encodes two texts, as the package runs it: torch on one thread),
``minilm-2`` (the same with torch's default two threads), ``warm-up`` (every specialist loaded,
as ``build_agent`` does). The settings alternate, ``--rounds`` times. Writes
``benchmarks/results/torch-threads-planning.json``: seconds per plan, per process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RELATIONS = HERE / "data" / "coco128_relations.jsonl"
OUT = HERE / "results" / "torch-threads-planning.json"
SETTINGS = ("cold", "minilm-1", "minilm-2", "warm-up")


def act(setting: str) -> None:
    """The one thing done in the planner's process before the timed plans."""
    from vpagent.config import load_settings
    from vpagent.tools.offline.text_embed import MiniLMEmbedder, torch_threads
    from vpagent.tools.toolbox import Toolbox
    from vpagent.tools.warm_up import warm_up

    if setting == "minilm-1":
        MiniLMEmbedder().encode(["a dog", "a brown cat"])
    elif setting == "minilm-2":  # as before the fix: the model's own encode at two threads
        embedder = MiniLMEmbedder()
        embedder.encode(["warm"])
        with torch_threads(2):
            embedder._model.get().encode(["a dog", "a brown cat"])
    elif setting == "warm-up":
        warm_up(Toolbox(load_settings().toolbox_config(), llm=lambda prompt: ""))


def child(setting: str, questions: int) -> dict[str, Any]:
    """Plan the questions after ``setting``'s action; seconds per plan."""
    from vpagent.config import load_settings
    from vpagent.llm.chat import build_chat_model
    from vpagent.planner.factory import build_planner

    settings = load_settings()
    planner = build_planner(settings, build_chat_model(settings.llm), warm=True)
    act(setting)
    rows = [json.loads(line) for line in RELATIONS.read_text().splitlines() if line.strip()]
    seconds = []
    for row in rows[:questions]:
        started = time.perf_counter()
        planner.plan(row["question"])
        seconds.append(round(time.perf_counter() - started, 3))
    return {"setting": setting, "seconds": seconds, "median_s": statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", choices=SETTINGS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.questions)))
        return
    runs = []
    for _ in range(args.rounds):
        for setting in SETTINGS:
            command = [sys.executable, __file__, "--child", setting]
            command += ["--questions", str(args.questions)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            run = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{setting:9} median {run['median_s']:.2f} s", flush=True)
            runs.append(run)
    summary = {
        setting: statistics.median(r["median_s"] for r in runs if r["setting"] == setting)
        for setting in SETTINGS
    }
    OUT.write_text(json.dumps({"median_of_medians_s": summary, "runs": runs}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
