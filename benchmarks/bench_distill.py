"""Teacher coverage and trace throughput for `vpagent distill traces`.

    python benchmarks/bench_distill.py subset Q.jsonl --per-type 4 --out A.jsonl B.jsonl
    python benchmarks/bench_distill.py run A.jsonl --out DIR --k 5 --workers 1
    python benchmarks/bench_distill.py report DIR [DIR ...]

`subset` draws a stratified sample (the same number per type, seeded) and deals it alternately
into the output files. `run` times `vpagent distill traces` end to end (agent start-up included)
and writes the figures to DIR/bench.json. `report` prints markdown: per type, the teacher's
accuracy with the temperature-0 program alone, coverage with that program (and its repairs)
alone vs with all k samples, and traces per hour of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from benchmarks.machine import cpu_model
from vpagent.distill.traces import load_item_records, load_run_info


def subset(source: Path, per_type: int, outs: list[Path], seed: int) -> None:
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    by_type: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        row["image"] = str((source.parent / row["image"]).resolve())
        by_type[row.get("type", "all")].append(row)
    rng = random.Random(seed)
    chosen = [
        row
        for kind in sorted(by_type)
        for row in rng.sample(by_type[kind], min(per_type, len(by_type[kind])))
    ]
    for index, out in enumerate(outs):
        part = chosen[index :: len(outs)]
        out.write_text("".join(json.dumps(row) + "\n" for row in part))
        print(f"{out}: {len(part)} items")


def run(dataset: Path, out: Path, k: int, workers: int, budget_s: float | None) -> None:
    """Time one fresh traces run; past ``budget_s`` it is interrupted (Ctrl-C) and the items
    finished by then are counted."""
    if (out / "items.jsonl").is_file():
        sys.exit(f"{out} already holds traces; use a fresh folder")
    command = [sys.executable, "-m", "vpagent", "distill", "traces", str(dataset), "--out",
               str(out), "--k", str(k), "--workers", str(workers)]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command)
    try:
        process.wait(timeout=budget_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        process.wait()
    wall = time.perf_counter() - started
    traced = len(load_item_records(out))
    result = {"dataset": str(dataset), "k": k, "workers": workers, "items": traced,
              "wall_s": round(wall, 1), "traces_per_hour": round(traced / wall * 3600, 1),
              "interrupted": process.returncode != 0, "load_average": os.getloadavg(),
              "cpu": cpu_model()}  # fmt: skip
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


def report(folders: list[Path]) -> None:
    stats: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for folder in folders:
        for record in load_item_records(folder):
            kind = stats[str(record.item.get("type", "all"))]
            first = [a for a in record.attempts if a.sample == 0]
            kind["items"] += 1
            kind["acc_t0"] += any(a.matches for a in first[:1])
            kind["cov_t0"] += any(a.correct for a in first)
            kind["cov_k"] += record.status == "verified"
    total = defaultdict(int)
    for kind in stats.values():
        for key, value in kind.items():
            total[key] += value
    k = load_run_info(folders[0]).get("k")
    print(f"| type | items | accuracy, temperature 0 | coverage, temperature 0 | coverage, k={k} |")
    print("|---|---|---|---|---|")
    for name, kind in [*sorted(stats.items()), ("**all**", total)]:
        n = kind["items"]
        cells = [f"{kind[key] / n:.0%} ({kind[key]})" for key in ("acc_t0", "cov_t0", "cov_k")]
        print(f"| {name} | {n} | " + " | ".join(cells) + " |")
    print()
    print("| run | workers | items | wall s | traces per hour |")
    print("|---|---|---|---|---|")
    for folder in folders:
        bench = folder / "bench.json"
        if bench.is_file():
            b = json.loads(bench.read_text())
            print(f"| {folder.name} | {b['workers']} | {b['items']} | {b['wall_s']} | "
                  f"{b['traces_per_hour']} |")  # fmt: skip
    print(f"\nCPU: {cpu_model()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sub = commands.add_parser("subset")
    sub.add_argument("source", type=Path)
    sub.add_argument("--per-type", type=int, default=4)
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--out", type=Path, nargs="+", required=True)
    go = commands.add_parser("run")
    go.add_argument("dataset", type=Path)
    go.add_argument("--out", type=Path, required=True)
    go.add_argument("--k", type=int, default=5)
    go.add_argument("--workers", type=int, default=1)
    go.add_argument("--budget-s", type=float, default=None, help="Interrupt the run after this.")
    show = commands.add_parser("report")
    show.add_argument("folders", type=Path, nargs="+")
    args = parser.parse_args()
    if args.command == "subset":
        subset(args.source, args.per_type, args.out, args.seed)
    elif args.command == "run":
        run(args.dataset, args.out, args.k, args.workers, args.budget_s)
    else:
        report(args.folders)


if __name__ == "__main__":
    main()
