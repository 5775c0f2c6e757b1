"""Questions per minute with 1, 2 and 4 LLM slots and worker processes, in one run.

Run: .venv/bin/python benchmarks/bench_parallel.py [--dataset DEV.jsonl] [--limit 12]
     [--configs 1x0,2x0,4x0,1x2,2x2] [--name NAME]

Each configuration ``SxW`` is one ``vpagent eval --workers W`` with ``llm.parallel = S`` on the
embedded default, over the same questions, one configuration after the other. Throughput is
measured between the first and the last answer written to the results file (start-up, model
loading and the prompt-prefix restore are reported apart), and given as a ratio to the first
configuration. Answers at temperature 0 are compared item by item with the first
configuration: batched kernels may change a token, and with it a program.

Writes benchmarks/results/parallel[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
DEFAULT_DATASET = ROOT.resolve().parent / "shared" / "data" / "dev.jsonl"
POLL_SECONDS = 0.2


def watch_lines(path: Path, stop: threading.Event, arrivals: list[float]) -> None:
    """Append the time each new line of ``path`` appears (the header line included)."""
    seen = 0
    while not stop.is_set():
        if path.is_file():
            count = path.read_bytes().count(b"\n")
            arrivals.extend([time.perf_counter()] * (count - seen))
            seen = max(seen, count)
        time.sleep(POLL_SECONDS)


def run_config(slots: int, workers: int, dataset: Path, limit: int, out: Path) -> dict:
    """One ``vpagent eval`` run; wall time, time to the first answer, steady throughput."""
    env = {k: v for k, v in os.environ.items() if k != "VPAGENT_CONFIG"}
    env["VPAGENT_LLM__PARALLEL"] = str(slots)
    command = [sys.executable, "-m", "vpagent", "eval", str(dataset), "--limit", str(limit),
               "--out", str(out), "--workers", str(workers), "--json"]  # fmt: skip
    arrivals: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=watch_lines, args=(out, stop, arrivals), daemon=True)
    started = time.perf_counter()
    watcher.start()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    stop.set()
    watcher.join()
    if done.returncode != 0:
        raise SystemExit(f"{slots}x{workers} failed: {done.stderr[-2000:]}")
    answers = arrivals[1:]  # the first line is the run header
    steady = (len(answers) - 1) / (answers[-1] - answers[0]) * 60 if len(answers) > 1 else 0.0
    rows = [json.loads(line) for line in out.read_text().splitlines()[1:]]
    return {
        "slots": slots,
        "workers": workers,
        "wall_s": round(wall, 1),
        "first_answer_s": round(answers[0] - started, 1) if answers else None,
        "questions_per_minute": round(steady, 2),
        "accuracy": sum(r["score"] for r in rows) / len(rows),
        "answers": {r["id"]: r["prediction"] for r in rows},
        "programs": {r["id"]: r["program"] for r in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--configs", default="1x0,2x0,4x0,1x2,2x2")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    configs = [tuple(int(n) for n in spec.split("x")) for spec in args.configs.split(",")]
    with tempfile.TemporaryDirectory(prefix="vpagent-bench-parallel-") as folder:
        # warm-up: the planner's prompt prefix is built and saved once, outside the timings
        run_config(1, 0, args.dataset, 1, Path(folder) / "warm.jsonl")
        runs = []
        for slots, workers in configs:
            print(f"{slots} slots x {workers} workers ...", file=sys.stderr, flush=True)
            out = Path(folder) / f"{slots}x{workers}.jsonl"
            runs.append(run_config(slots, workers, args.dataset, args.limit, out))
    base = runs[0]
    for run in runs:
        run["ratio"] = round(run["questions_per_minute"] / base["questions_per_minute"], 2)
        run["answers_differ"] = sorted(
            i for i, answer in run["answers"].items() if base["answers"].get(i) != answer
        )
        run["programs_differ"] = sorted(
            i for i, program in run["programs"].items() if base["programs"].get(i) != program
        )
    write_report(runs, args)


def write_report(runs: list[dict], args: argparse.Namespace) -> None:
    suffix = f"-{args.name}" if args.name else ""
    path = HERE / "results" / f"parallel{suffix}"
    cores = len(os.sched_getaffinity(0))
    meta = {"dataset": str(args.dataset.name), "questions": args.limit,
            "cpu": cpu_model(), "cores": cores}  # fmt: skip
    slim = [{k: v for k, v in run.items() if k not in {"answers", "programs"}} for run in runs]
    path.with_suffix(".json").write_text(json.dumps({**meta, "runs": slim}, indent=2) + "\n")
    lines = [
        f"# Throughput: LLM slots x worker processes ({args.limit} questions of "
        f"{args.dataset.name}, {cores} cores, {cpu_model()})",
        "",
        "Produced by `benchmarks/bench_parallel.py`: one `vpagent eval` per row, one after the "
        "other on the same machine. Questions per minute between the first and the last "
        "answer; ratio to the first row. Answers and programs compared item by item with the "
        "first row (temperature 0).",
        "",
        "| slots | workers | questions/min | ratio | first answer after | wall | accuracy |"
        " answers differ | programs differ |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in slim:
        lines.append(
            f"| {run['slots']} | {run['workers']} | {run['questions_per_minute']:.2f} | "
            f"{run['ratio']:.2f} | {run['first_answer_s']} s | {run['wall_s']} s | "
            f"{run['accuracy']:.0%} | {len(run['answers_differ'])} | "
            f"{len(run['programs_differ'])} |"
        )
    lines.append("")
    lines.append("Workers 0: the questions run in the `vpagent eval` process itself.")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
