"""Where a long-running `vpagent serve` keeps memory: tracemalloc snapshots under the soak load.

Run: nice -n 10 .venv/bin/python benchmarks/bench_heap.py
     [--marks 1000 2000 4000 6000] [--name NAME]

Starts the server as `bench_soak.py` does (scripted planner on loopback, real offline tools,
disk caches and traces in a temporary folder) but through `benchmarks/traced_serve.py`, so
Python's allocation tracer runs in it, and sends the soak's mixed load. At each mark (requests
done) it asks the server for a snapshot and reads its anonymous RSS. The report sets the
growth of the heap the kernel sees beside the growth of the live Python objects: if the Python
objects stay flat while the heap grows, no Python object is leaking and the growth is native
(allocator arenas, a native library); otherwise the lines that allocated the growth, largest
first. Writes benchmarks/results/heap[-NAME].md and .json. tracemalloc slows the server, so
its request rate is not the soak's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench_server_load import free_port, wait_healthy  # beside this script
from bench_soak import (
    PROGRAM,
    Load,
    resident_kinds,
    slope_per_1000,
    small_photos,
    start_server,
)
from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
SNAPSHOT_WAIT_S = 300.0
TOP = 15


def take_snapshot(pid: int, folder: Path, number: int) -> Path:
    """Signal the server and wait for its snapshot number ``number`` to be written."""
    path = folder / f"snapshot-{number}.tm"
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + SNAPSHOT_WAIT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server wrote no {path.name} in {SNAPSHOT_WAIT_S:.0f} s")
        time.sleep(0.2)
    return path


def run_load(args: argparse.Namespace, folder: Path, planner: dict[str, str]) -> list[dict]:
    """The soak load with a snapshot at each mark; one row per mark."""
    snapshots = folder / "snapshots"
    launcher = (sys.executable, str(HERE / "traced_serve.py"), str(snapshots))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args, port, folder, planner, launcher)
    rows: list[dict[str, Any]] = []
    try:
        wait_healthy(base, 600)
        load = Load(base, small_photos(4))
        started = time.monotonic()
        starts = [0, *args.marks[:-1]]
        for number, (low, high) in enumerate(zip(starts, args.marks, strict=True), start=1):
            load.run(range(low, high), args.clients)
            path = take_snapshot(server.pid, snapshots, number)
            rows.append(
                {
                    "requests": high,
                    "snapshot": str(path),
                    "outcomes": dict(load.outcomes),
                    "t_s": round(time.monotonic() - started, 1),
                    **resident_kinds(server.pid),
                }
            )
            print(rows[-1], flush=True)
    finally:
        server.terminate()
        try:
            server.wait(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    return rows


def growth(rows: list[dict[str, Any]], key: str) -> float | None:
    """Growth of ``key`` per 1,000 requests after the first mark (up to it, the server's trace
    store is still filling: warm-up)."""
    return slope_per_1000(rows, key, after=rows[0]["requests"])


def compare(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Python memory per mark, and the allocation sites that grew from the second mark (after
    the warm-up) to the last, largest first (each with its innermost frames)."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    snapshots = [tracemalloc.Snapshot.load(r["snapshot"]).filter_traces(ignore) for r in rows]
    for row, snapshot in zip(rows, snapshots, strict=True):
        row["python_mb"] = round(sum(s.size for s in snapshot.statistics("filename")) / 2**20, 2)
    grown = snapshots[-1].compare_to(snapshots[1], "traceback")
    return [
        {
            "kb": round(stat.size_diff / 1024, 1),
            "blocks": stat.count_diff,
            "frames": [f"{_short(frame.filename)}:{frame.lineno}" for frame in stat.traceback][-6:],
        }
        for stat in sorted(grown, key=lambda s: s.size_diff, reverse=True)[:TOP]
    ]


def _short(filename: str) -> str:
    """A file's name from the project, site-packages or the standard library."""
    for prefix in (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["stdlib"], str(ROOT)):
        if filename.startswith(prefix):
            return filename[len(prefix) :].lstrip("/")
    return filename


def write_report(args: argparse.Namespace, rows: list[dict], top: list[dict]) -> None:
    path = HERE / "results" / (f"heap-{args.name}" if args.name else "heap")
    span = f"requests {args.marks[1]:,}-{args.marks[-1]:,} (warm-up: up to the first mark)"
    result = {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        **vars(args),
        "marks": rows,
        "anon_growth_mb_per_1000": growth(rows, "rss_anon_mb"),
        "python_growth_mb_per_1000": growth(rows, "python_mb"),
        "top_growth": top,
    }
    path.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# Where `vpagent serve` keeps memory ({result['cores']} cores, {result['cpu']})",
        "",
        "`benchmarks/bench_heap.py`: the soak's mixed load (scripted planner, real offline "
        f"tools, disk caches and traces; {args.clients} clients) with tracemalloc in the "
        "server; a snapshot at each mark.",
        "",
        "| requests | anonymous RSS MB (the heap) | live Python objects MB | wall s |",
        "|---|---|---|---|",
        *(
            f"| {r['requests']:,} | {r['rss_anon_mb']} | {r['python_mb']} | {r['t_s']} |"
            for r in rows
        ),
        "",
        f"Growth per 1,000 requests over {span} (least squares): heap "
        f"{result['anon_growth_mb_per_1000']} MB, live Python objects "
        f"{result['python_growth_mb_per_1000']} MB.",
        "",
        f"Allocation sites that grew most from {args.marks[1]:,} to {args.marks[-1]:,} requests "
        "(innermost frame last):",
        "",
        "| KB | blocks | where (innermost last) |",
        "|---|---|---|",
        *(
            f"| {t['kb']} | {t['blocks']} | {' <- '.join(reversed(t['frames'][-3:]))} |"
            for t in top
        ),
        "",
    ]
    path.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", type=int, nargs="+", default=[1000, 2000, 4000, 6000])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=4)
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    if args.marks != sorted(set(args.marks)) or len(args.marks) < 4:
        parser.error("--marks: at least four request counts (the first ends the warm-up), rising")
    sys.path.insert(0, str(ROOT))
    from tests.fixtures.scripted_openai import ScriptedOpenAI

    with contextlib.ExitStack() as stack:
        planner = stack.enter_context(ScriptedOpenAI(PROGRAM)).env()
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vpagent-heap-")))
        rows = run_load(args, folder, planner)
        top = compare(rows)
    write_report(args, rows, top)


if __name__ == "__main__":
    main()
