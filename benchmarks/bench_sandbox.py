"""Sandbox overhead and tool-call round trip, against smolagents' in-process executor.

Run: .venv/bin/python benchmarks/bench_sandbox.py [--runs 50] [--calls 200]

Measures, in one run:
  (a) the per-program overhead of SandboxExecutor.run() for a trivial program, warm pool:
      before each timed run the pool is allowed to refill (wait_until_warm, not timed), so
      every run takes an already-started, ready worker. A back-to-back figure (no waiting,
      so runs queue behind worker start-up) is reported too.
  (b) the round trip of one tool call: a program making N trivial calls, minus (a), over N.
  (c) the same two programs through smolagents' LocalPythonExecutor (in-process, AST
      interpreter, no isolation), reported as ratios.
Prints a markdown table and writes it to benchmarks/results/sandbox.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py, beside this script

from vpagent.sandbox.executor import SandboxExecutor
from vpagent.sandbox.limits import SandboxLimits
from vpagent.tools.image_patch import ImagePatch

RESULTS = Path(__file__).parent / "results" / "sandbox.md"
IMAGE = {"id": "img", "width": 640, "height": 480}
POOL_SIZE = 2
TRIVIAL = "def execute_command(image):\n    return 'ok'\n"


def calls_program(calls: int) -> str:
    return (
        "def execute_command(image):\n"
        f"    for _ in range({calls}):\n"
        "        image.find('dog')\n"
        "    return 'ok'\n"
    )


def trivial_tool(tool: str, args: dict[str, Any]) -> Any:
    """The cheapest possible host answer, so only the transport is measured."""
    return []


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def time_runs(run: Callable[[], object], runs: int, before: Callable[[], object]) -> list[float]:
    """Seconds per call of ``run``; ``before`` runs untimed ahead of each call."""
    samples = []
    for _ in range(runs):
        before()
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


# The two executors.


def bench_sandbox(runs: int, calls: int) -> dict[str, list[float]]:
    limits = SandboxLimits(cpu_seconds=10, wall_seconds=60)
    many_calls = calls_program(calls)
    with SandboxExecutor(limits, pool_size=POOL_SIZE) as executor:

        def warm() -> None:
            if not executor.wait_until_warm(timeout=60):
                raise RuntimeError("the sandbox pool did not warm up")

        def run(source: str, expected_steps: int) -> None:
            result = executor.run(source, IMAGE, trivial_tool)
            if not result.ok or len(result.steps) != expected_steps:
                raise RuntimeError(f"benchmark program failed: {result.feedback()}")

        warm()
        trivial = time_runs(lambda: run(TRIVIAL, 0), runs, warm)
        with_calls = time_runs(lambda: run(many_calls, calls), max(5, runs // 5), warm)
        warm()
        back_to_back = time_runs(lambda: run(TRIVIAL, 0), runs // 2, lambda: None)
    return {"trivial": trivial, "calls": with_calls, "back_to_back": back_to_back}


def bench_smolagents(runs: int, calls: int) -> dict[str, list[float]]:
    from smolagents.local_python_executor import LocalPythonExecutor

    executor = LocalPythonExecutor(additional_authorized_imports=[])
    executor.send_tools({})
    image = ImagePatch(trivial_tool, str(IMAGE["id"]), (0, 0, IMAGE["width"], IMAGE["height"]))
    executor.send_variables({"image": image})

    def run(source: str) -> None:
        output = executor(source + "\nexecute_command(image)")
        if output.output != "ok":
            raise RuntimeError(f"smolagents run failed: {output!r}")

    many_calls = calls_program(calls)
    trivial = time_runs(lambda: run(TRIVIAL), runs, lambda: None)
    with_calls = time_runs(lambda: run(many_calls), max(5, runs // 5), lambda: None)
    return {"trivial": trivial, "calls": with_calls}


# Report.


def machine_facts() -> str:
    cpu = cpu_model()
    return (
        f"nproc {os.cpu_count()}, {cpu}; Python {platform.python_version()} "
        f"({sys.implementation.name}), {platform.system()} {platform.release()}; "
        f"running as {'root' if os.geteuid() == 0 else 'a normal user'}; "
        f"load average at the end {os.getloadavg()[0]:.2f} (the machine may be shared)"
    )


def report(sandbox: dict[str, list[float]], smol: dict[str, list[float]], calls: int) -> str:
    ms = 1000.0
    sb_trivial, sm_trivial = (
        statistics.median(sandbox["trivial"]),
        statistics.median(smol["trivial"]),
    )
    sb_call = (statistics.median(sandbox["calls"]) - sb_trivial) / calls
    sm_call = (statistics.median(smol["calls"]) - sm_trivial) / calls
    rows = [
        (
            "per-program overhead, warm pool (median)",
            f"{sb_trivial * ms:.2f} ms",
            f"{sm_trivial * ms:.3f} ms",
            f"{sb_trivial / sm_trivial:.0f}x",
            "< 20 ms",
            sb_trivial * ms < 20,
        ),
        (
            "per-program overhead, warm pool (p90)",
            f"{percentile(sandbox['trivial'], 0.9) * ms:.2f} ms",
            f"{percentile(smol['trivial'], 0.9) * ms:.3f} ms",
            f"{percentile(sandbox['trivial'], 0.9) / percentile(smol['trivial'], 0.9):.0f}x",
            "",
            None,
        ),
        (
            "per-program, back-to-back (median, no refill wait)",
            f"{statistics.median(sandbox['back_to_back']) * ms:.1f} ms",
            "",
            "",
            "",
            None,
        ),
        (
            f"tool-call round trip (median of {calls} calls)",
            f"{sb_call * ms:.3f} ms",
            f"{sm_call * ms:.4f} ms",
            f"{sb_call / sm_call:.0f}x",
            "< 0.5 ms",
            sb_call * ms < 0.5,
        ),
    ]
    lines = [
        "# Sandbox benchmark",
        "",
        f"Machine: {machine_facts()}.",
        "",
        f"Pool: `SandboxExecutor(pool_size={POOL_SIZE})`; before each timed warm run the pool "
        "was allowed to refill (`wait_until_warm`, untimed), so every run took a started, ready "
        "worker. Back-to-back runs do not wait, so they include waiting for worker start-up. "
        f"Runs: {len(sandbox['trivial'])} trivial, {len(sandbox['calls'])} with {calls} calls. "
        "The round trip is (median of the N-call program - median trivial) / N; the host "
        "answers each call with `[]`.",
        "",
        "smolagents: `LocalPythonExecutor` (same process, AST interpreter, no isolation), the "
        "same source plus `execute_command(image)`, the same `ImagePatch` calling a local "
        "function. Ratio = vpagent sandbox / smolagents.",
        "",
        "| measure | vpagent sandbox | smolagents local | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for name, ours, theirs, ratio, target, met in rows:
        verdict = "" if met is None else ("yes" if met else "**no**")
        lines.append(f"| {name} | {ours} | {theirs} | {ratio} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50, help="timed trivial runs")
    parser.add_argument("--calls", type=int, default=200, help="tool calls in one program")
    parser.add_argument("--output", type=Path, default=RESULTS)
    options = parser.parse_args()
    sandbox = bench_sandbox(options.runs, options.calls)
    smol = bench_smolagents(options.runs, options.calls)
    table = report(sandbox, smol, options.calls)
    print(table)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(table)


if __name__ == "__main__":
    main()
