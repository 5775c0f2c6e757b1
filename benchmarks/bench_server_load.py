"""The HTTP server under load, on loopback: admission control, latency and single-flight.

Run: .venv/bin/python benchmarks/bench_server_load.py [--requests 60] [--concurrency 12]
     [--max-concurrent 2] [--max-queue 8] [--deadline 300] [--burst 8] [--name NAME]

Starts ``vpagent serve`` (the embedded default) on a free loopback port with the given limits,
then sends ``--requests`` questions (the dev set's first 16 photos and questions, in turn, so
later rounds repeat earlier questions: identical ones in flight share a computation and the
planner's and tools' caches answer repeats faster, as on a shared server) from
``--concurrency`` client threads, each taking the next question as soon as its last one is
answered or refused. Every response must be 200, or 429/503 with ``Retry-After``; any other
status, or a request without a response by the deadline, is counted as a failure. Then a
burst of ``--burst`` identical requests measures single-flight (computations vs requests,
from the server's /metrics). Stops by itself: bounded in requests and in time.

Writes benchmarks/results/server-load[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
DATA = ROOT.resolve().parent / "shared" / "data"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def questions(limit: int) -> list[tuple[bytes, str]]:
    rows = [json.loads(line) for line in (DATA / "dev.jsonl").read_text().splitlines()]
    return [((DATA / row["image"]).read_bytes(), row["question"]) for row in rows[:limit]]


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "VPAGENT_CONFIG"}
    env |= {"VPAGENT_SERVER__MAX_CONCURRENT": str(args.max_concurrent),
            "VPAGENT_SERVER__MAX_QUEUE": str(args.max_queue),
            "VPAGENT_SERVER__REQUEST_TIMEOUT_S": str(args.deadline),
            "VPAGENT_LLM__PARALLEL": str(args.max_concurrent)}  # fmt: skip
    command = [sys.executable, "-m", "vpagent", "serve", "--port", str(port)]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)  # fmt: skip


def wait_healthy(base: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def ask(base: str, image: bytes, question: str, deadline: float) -> tuple[int, float, bool]:
    """(status, seconds, whether a refusal carried Retry-After); status 0: no response."""
    started = time.perf_counter()
    try:
        response = httpx.post(f"{base}/v1/ask", files={"image": ("q.jpg", image, "image/jpeg")},
                              data={"question": question}, timeout=deadline + 30)  # fmt: skip
    except httpx.HTTPError:
        return 0, time.perf_counter() - started, False
    retry = "retry-after" in response.headers
    return response.status_code, time.perf_counter() - started, retry


def load(base: str, items: list[tuple[bytes, str]], args: argparse.Namespace) -> dict:
    outcomes: list[tuple[int, float, bool]] = []
    lock = threading.Lock()
    counter = iter(range(args.requests))

    def client() -> None:
        while True:
            with lock:
                number = next(counter, None)
            if number is None:
                return
            image, question = items[number % len(items)]
            outcome = ask(base, image, question, args.deadline)
            with lock:
                outcomes.append(outcome)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    answered = sorted(seconds for status, seconds, _ in outcomes if status == 200)
    refused = [o for o in outcomes if o[0] in (429, 503)]
    return {
        "requests": len(outcomes),
        "answered": len(answered),
        "refused": len(refused),
        "refused_with_retry_after": sum(1 for o in refused if o[2]),
        "failed": sum(1 for o in outcomes if o[0] not in (200, 429, 503)),
        "statuses": sorted({o[0] for o in outcomes}),
        "wall_s": round(wall, 1),
        "answers_per_minute": round(len(answered) / wall * 60, 2),
        "p50_s": round(statistics.median(answered), 2) if answered else None,
        "p95_s": round(answered[int(0.95 * (len(answered) - 1))], 2) if answered else None,
        "refused_p50_s": round(statistics.median(o[1] for o in refused), 3) if refused else None,
    }


def burst(base: str, item: tuple[bytes, str], size: int, deadline: float) -> dict:
    before = hits(base)
    with_threads: list[tuple[int, float, bool]] = []
    threads = [threading.Thread(target=lambda: with_threads.append(ask(base, *item, deadline)))
               for _ in range(size)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared = hits(base) - before
    return {"requests": size, "answered": sum(1 for o in with_threads if o[0] == 200),
            "computations": size - int(shared)}  # fmt: skip


def hits(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    match = re.search(r"^vpagent_single_flight_hits_total ([\d.]+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=300.0)
    parser.add_argument("--burst", type=int, default=8)
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args, port)
    try:
        wait_healthy(base, 600)
        *items, fresh = questions(17)  # the burst asks a question the load never asked
        ask(base, *items[0], args.deadline)  # warm-up outside the figures
        measured = load(base, items, args)
        shared = burst(base, fresh, args.burst, args.deadline)
    finally:
        server.terminate()
        server.wait(timeout=args.deadline + 60)
    write_report(measured, shared, args)


def write_report(measured: dict, shared: dict, args: argparse.Namespace) -> None:
    path = HERE / "results" / (f"server-load-{args.name}" if args.name else "server-load")
    meta = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), **vars(args)}
    path.with_suffix(".json").write_text(
        json.dumps({**meta, "load": measured, "single_flight": shared}, indent=2) + "\n"
    )
    text = (
        f"# Server under load ({meta['cores']} cores, {meta['cpu']}, embedded default)\n\n"
        f"`benchmarks/bench_server_load.py`: {args.requests} requests from {args.concurrency} "
        f"client threads against `max_concurrent = {args.max_concurrent}`, `max_queue = "
        f"{args.max_queue}`, deadline {args.deadline:g} s; loopback.\n\n"
        "| requests | answered (200) | refused (429/503) | with Retry-After | other failures |"
        " answers/min | p50 | p95 | refusal p50 | wall |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        f"| {measured['requests']} | {measured['answered']} | {measured['refused']} | "
        f"{measured['refused_with_retry_after']} | {measured['failed']} | "
        f"{measured['answers_per_minute']} | {measured['p50_s']} s | {measured['p95_s']} s | "
        f"{measured['refused_p50_s']} s | {measured['wall_s']} s |\n\n"
        f"The {args.requests} requests cycle over 16 dev questions: repeats share computations "
        "in flight and hit the planner's and tools' caches, as on a shared server.\n\n"
        f"Single-flight: a burst of {shared['requests']} identical requests for a question not "
        f"asked before, {shared['answered']} answered, {shared['computations']} computation(s).\n"
    )
    path.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
