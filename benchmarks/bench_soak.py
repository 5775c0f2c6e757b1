"""Soak: `vpagent serve` under a long mixed load, then `kill -9` mid-load and a restart.

Run: nice -n 10 .venv/bin/python benchmarks/bench_soak.py [--requests 2000] [--clients 8]
     [--max-concurrent 2] [--max-queue 4] [--kill-after 150] [--planner scripted|tiny]
     [--name NAME]

Starts ``vpagent serve`` on a free loopback port with a test planner, its tool-result cache,
plan cache and trace directory on disk in a temporary folder, and ``max_concurrent`` below the
number of client threads. The planner: ``scripted`` (default) is tests/fixtures/scripted_openai.py
on loopback replying with PROGRAM, so every question runs a program in the sandbox with real
offline tools (a trace, tool-cache records); ``tiny`` is the smollm2-135m pack on one thread,
whose replies never hold a usable program, so every answer is the direct VQA fallback and the
sandbox, the tools and the traces stay idle. The clients send ``--requests`` mixed
requests: questions on small dev photos as multipart, as JSON and as OpenAI chat completions;
trace fetches; bad inputs (not an image, a truncated JPEG, an empty question, a bad data URL);
and requests the client abandons after 50 ms (a disconnect). Every 100 requests it samples the
server's RSS, open file descriptors, threads, live sandbox workers, the trace store (how many
of the last answers' traces it still serves), the traces on disk and the disk caches' record
counts.

Then it keeps the load going, counts the disk caches' records and the saved traces, kills the
server with SIGKILL after ``--kill-after`` more requests, restarts it on the same folders and
checks that both caches open, pass SQLite's integrity check and hold every record counted
before the kill, each one decodable, that every saved trace loads (no torn record), and that
the restarted server answers.

Stops by itself (bounded in requests and in time). Writes benchmarks/results/soak[-NAME].md,
.json and .png. The machine is shared: run it under ``nice -n 10`` and say so next to figures.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psutil
from bench_server_load import free_port, wait_healthy  # beside this script
from machine import cpu_model  # benchmarks/machine.py, beside this script
from PIL import Image

from vpagent.http.app import TRACES_KEPT
from vpagent.trace.store import load_trace

HERE = Path(__file__).parent
ROOT = HERE.parent
DATA = ROOT.resolve().parent / "shared" / "data"
SAMPLE_EVERY = 100
WARM_UP = 500  # requests before RSS growth is measured
DISCONNECT_AFTER_S = 0.05
REQUEST_TIMEOUT_S = 120.0
SERVER_DEADLINE_S = 90.0
PROGRAM = """def execute_command(image):
    people = image.find("person")
    standing = [p for p in people[:2] if p.verify_property("person", "standing")]
    return str(len(people) + len(standing))
"""


PLANNERS = {
    "scripted": "a scripted planner on loopback (every question runs PROGRAM: find people, "
    "verify a property of two; real offline tools)",
    "tiny": "the tiny planner (smollm2-135m, one thread; its replies hold no usable program, "
    "so the direct VQA fallback answers)",
}


def small_photos(count: int) -> list[bytes]:
    """The first dev photos, scaled to 320 px wide JPEGs (keeps each answer cheap)."""
    rows = [json.loads(line) for line in (DATA / "dev.jsonl").read_text().splitlines()]
    seen: list[str] = []
    for row in rows:
        if row["image"] not in seen:
            seen.append(row["image"])
        if len(seen) == count:
            break
    photos = []
    for name in seen:
        image = Image.open(DATA / name).convert("RGB")
        image.thumbnail((320, 320))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=85)
        photos.append(buffer.getvalue())
    return photos


QUESTIONS = ["How many people are there?", "Is there a dog?", "What color is the car?"]


def start_server(
    args: argparse.Namespace,
    port: int,
    folder: Path,
    planner: dict[str, str],
    launcher: tuple[str, ...] = (sys.executable, "-m", "vpagent"),
) -> subprocess.Popen[bytes]:
    """``vpagent serve`` (run by ``launcher``) on ``port``, its caches and traces in ``folder``."""
    env = {k: v for k, v in os.environ.items() if k != "VPAGENT_CONFIG"}
    env |= planner | {
        "VPAGENT_SERVER__MAX_CONCURRENT": str(args.max_concurrent),
        "VPAGENT_SERVER__MAX_QUEUE": str(args.max_queue),
        "VPAGENT_SERVER__REQUEST_TIMEOUT_S": str(SERVER_DEADLINE_S),
        "VPAGENT_CACHE__DIRECTORY": str(folder / "tool-cache"),
        "VPAGENT_AGENT__PLAN_CACHE_DIR": str(folder / "plan-cache"),
        "VPAGENT_TRACE_DIR": str(folder / "traces"),
    }
    command = [*launcher, "serve", "--port", str(port)]
    log = (folder / "server.log").open("ab")
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)


class Load:
    """The mixed requests, numbered; outcome counts and the trace ids of answers."""

    def __init__(self, base: str, photos: list[bytes]) -> None:
        self.base = base
        self.photos = photos
        self.outcomes: Counter[str] = Counter()
        self.trace_ids: list[str] = []
        self.lock = threading.Lock()

    def send(self, number: int) -> str:
        """Send request ``number`` (its kind is ``number`` mod 10); its outcome label."""
        kind = number % 10
        photo = self.photos[(number // 10) % len(self.photos)]
        question = QUESTIONS[(number // 10) % len(QUESTIONS)]
        timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
        try:
            with httpx.Client(base_url=self.base, timeout=timeout) as client:
                response = self._request(client, kind, photo, question)
        except httpx.TimeoutException:
            return "disconnected" if kind == 9 else f"{kind}:client-timeout"
        except httpx.HTTPError as error:
            return f"transport-error:{type(error).__name__}"
        label = f"{kind}:{response.status_code}"
        if response.status_code == 200 and kind in (0, 1, 2, 3):
            trace_id = response.json().get("trace_id")
            if trace_id:
                with self.lock:
                    self.trace_ids.append(trace_id)
        return label

    def _request(
        self, client: httpx.Client, kind: int, photo: bytes, question: str
    ) -> httpx.Response:
        multipart = {"image": ("q.jpg", photo, "image/jpeg")}
        if kind in (0, 1, 2):
            return client.post("/v1/ask", files=multipart, data={"question": question})
        if kind == 3:
            body = {"image_base64": base64.b64encode(photo).decode(), "question": question}
            return client.post("/v1/ask", json=body)
        if kind == 4:
            url = "data:image/jpeg;base64," + base64.b64encode(photo).decode()
            content = [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": {"url": url}},
            ]
            body = {"model": "vpagent", "messages": [{"role": "user", "content": content}]}
            return client.post("/v1/chat/completions", json=body)
        if kind == 5:
            with self.lock:
                trace_id = self.trace_ids[-1] if self.trace_ids else "none"
            return client.get(f"/v1/traces/{trace_id}")
        if kind == 6:
            bad = {"image": ("q.jpg", b"plain text, not an image", "image/jpeg")}
            return client.post("/v1/ask", files=bad, data={"question": question})
        if kind == 7:
            truncated = {"image": ("q.jpg", photo[: len(photo) // 3], "image/jpeg")}
            return client.post("/v1/ask", files=truncated, data={"question": question})
        if kind == 8:
            broken = {"url": "data:image/png;base64,@@@"}
            content = [
                {"type": "text", "text": question},
                {"type": "image_url", "image_url": broken},
            ]
            body = {"model": "vpagent", "messages": [{"role": "user", "content": content}]}
            return client.post("/v1/chat/completions", json=body)
        short = httpx.Timeout(DISCONNECT_AFTER_S)  # 9: ask, then hang up before the answer
        return client.post(
            "/v1/ask", files=multipart, data={"question": question + " Really?"}, timeout=short
        )

    def run(self, numbers: range, clients: int, on_done: Any = None) -> None:
        """Send ``numbers`` from ``clients`` threads; ``on_done(count)`` after each."""
        counter = iter(numbers)
        done = 0

        def client() -> None:
            nonlocal done
            while True:
                with self.lock:
                    number = next(counter, None)
                if number is None:
                    return
                label = self.send(number)
                with self.lock:
                    self.outcomes[label] += 1
                    done += 1
                    count = done
                if on_done is not None:
                    on_done(count)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def cache_records(folder: Path) -> int:
    """Records in a diskcache folder, read through SQLite (read-only, beside the writer)."""
    database = folder / "cache.db"
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM Cache").fetchone()[0])


def check_cache(folder: Path) -> dict[str, Any]:
    """Open a diskcache folder as the server does; integrity check; decode every record."""
    import diskcache

    with sqlite3.connect(folder / "cache.db", timeout=30) as connection:
        integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    torn = 0
    cache = diskcache.Cache(str(folder), disk=diskcache.JSONDisk)
    try:
        keys = list(cache.iterkeys())
        for key in keys:
            try:
                cache.get(key, default=None, retry=True)
            except Exception:  # an undecodable value is a torn record
                torn += 1
    finally:
        cache.close()
    return {"integrity": integrity, "records": len(keys), "torn": torn}


def check_traces(folder: Path) -> dict[str, int]:
    """Load every saved trace; one that does not load is a torn record."""
    paths = sorted(folder.glob("*.json"))
    torn = 0
    for path in paths:
        try:
            load_trace(path)
        except ValueError:  # pydantic's ValidationError (bad JSON, a cut record) is one
            torn += 1
    leftovers = len(list(folder.glob(".*.tmp")))  # a write the kill cut before its rename
    return {"records": len(paths), "torn": torn, "temporary_files_left": leftovers}


def trace_files(folder: Path) -> int:
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def sandbox_workers(process: psutil.Process) -> int:
    count = 0
    for child in process.children(recursive=True):
        try:
            if "vpagent.sandbox.worker" in " ".join(child.cmdline()):
                count += 1
        except psutil.Error:
            continue
    return count


class Sampler:
    """Samples the server every SAMPLE_EVERY requests."""

    def __init__(self, pid: int, folder: Path, load: Load) -> None:
        self.process = psutil.Process(pid)
        self.folder = folder
        self.load = load
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, count: int) -> None:
        if count % SAMPLE_EVERY:
            return
        with self.lock:
            self.rows.append(self.sample(count))

    def sample(self, count: int) -> dict[str, Any]:
        with self.load.lock:
            recent = self.load.trace_ids[-20:]
        served = 0
        entry_kb = None  # what one entry of the server's trace store holds: JSON and HTML
        with httpx.Client(base_url=self.load.base, timeout=60) as client:
            for trace_id in recent:
                if client.get(f"/v1/traces/{trace_id}").status_code == 200:
                    served += 1
            if recent:
                url = f"/v1/traces/{recent[-1]}"
                both = [client.get(url), client.get(url, params={"format": "html"})]
                if all(response.status_code == 200 for response in both):
                    entry_kb = round(sum(len(r.content) for r in both) / 1024, 1)
        return {
            "requests": count,
            "rss_mb": round(self.process.memory_info().rss / 2**20, 2),
            **resident_kinds(self.process.pid),
            "fds": self.process.num_fds(),
            "threads": self.process.num_threads(),
            "sandbox_workers": sandbox_workers(self.process),
            "traces_served_of_last_20": served if recent else None,
            "trace_entry_kb": entry_kb,
            "tool_cache_records": cache_records(self.folder / "tool-cache"),
            "plan_cache_records": cache_records(self.folder / "plan-cache"),
            "trace_files": trace_files(self.folder / "traces"),
            "t_s": round(time.monotonic(), 1),
        }


def resident_kinds(pid: int) -> dict[str, float]:
    """Resident memory by kind (/proc/PID/status): anonymous (the heap, where a leak grows) and
    file-backed (mapped model weights, which the kernel drops and reads back under pressure)."""
    fields = {"RssAnon": "rss_anon_mb", "RssFile": "rss_file_mb"}
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in fields:
            values[fields[name]] = round(int(rest.split()[0]) / 1024, 2)
    return values


def server_errors(log: Path) -> dict[str, Any]:
    """5xx answers and tracebacks in the server's log (the soak expects none), and the first
    traceback with the line before it (who logged it)."""
    lines = log.read_text(errors="replace").splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Traceback")]
    first = "\n".join(lines[max(0, starts[0] - 1) : starts[0] + 40]) if starts else None
    return {
        "5xx": sum(bool(re.search(r'HTTP/1\.1" 5\d\d ', line)) for line in lines),
        "tracebacks": len(starts),
        "first_traceback": first,
    }


def store_full_at(rows: list[dict[str, Any]]) -> int | None:
    """Requests done when the server's trace store first held TRACES_KEPT traces (each answer
    computed puts one there and one on disk, so the disk count tells), from then on bounded."""
    return next((row["requests"] for row in rows if row["trace_files"] >= TRACES_KEPT), None)


def slope_per_1000(rows: list[dict[str, Any]], key: str, after: int = WARM_UP) -> float | None:
    """Least-squares growth of ``key`` per 1,000 requests over the rows after ``after``."""
    points = [(row["requests"], row[key]) for row in rows if row["requests"] > after]
    if len(points) < 3:
        return None
    fit = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return round(fit.slope * 1000, 3)


def soak(args: argparse.Namespace, folder: Path, planner: dict[str, str]) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(args, port, folder, planner)
    wait_healthy(base, 600)
    load = Load(base, small_photos(4))
    sampler = Sampler(server.pid, folder, load)
    started = time.monotonic()
    sampler.rows.append(sampler.sample(0))
    load.run(range(args.requests), args.clients, sampler)
    soak_s = time.monotonic() - started
    outcomes = dict(load.outcomes)
    errors = server_errors(folder / "server.log")

    # kill -9 mid-load: a second batch of load, the server killed while it runs.
    before_kill: dict[str, int] = {}
    killed = threading.Event()

    def kill_when(count: int) -> None:
        if count == args.kill_after and not killed.is_set():
            before_kill["tool"] = cache_records(folder / "tool-cache")
            before_kill["plan"] = cache_records(folder / "plan-cache")
            before_kill["traces"] = trace_files(folder / "traces")
            os.kill(server.pid, signal.SIGKILL)
            killed.set()

    kill_load = Load(base, load.photos)
    kill_load.trace_ids = list(load.trace_ids)
    kill_load.run(
        range(args.requests, args.requests + 2 * args.kill_after), args.clients, kill_when
    )
    server.wait(timeout=60)
    time.sleep(2)  # the killed server's workers see their pipes close and exit
    orphans = [p.pid for p in psutil.process_iter(["cmdline", "ppid"]) if _orphan_worker(p)]

    checks = {
        "tool": check_cache(folder / "tool-cache"),
        "plan": check_cache(folder / "plan-cache"),
        "traces": check_traces(folder / "traces"),
    }
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    restarted = start_server(args, port, folder, planner)
    try:
        wait_healthy(base, 600)
        after = Load(base, load.photos)
        after.run(range(0, 40), 4)
    finally:
        restarted.terminate()
        restarted.wait(timeout=120)
    return {
        "soak_s": round(soak_s, 1),
        "outcomes": outcomes,
        "samples": sampler.rows,
        "server_errors": errors,
        "rss_growth_mb_per_1000": slope_per_1000(sampler.rows, "rss_mb"),
        "trace_store_full_at": store_full_at(sampler.rows),
        "anon_growth_mb_per_1000_store_full": slope_per_1000(
            sampler.rows, "rss_anon_mb", store_full_at(sampler.rows) or args.requests
        ),
        "anon_growth_mb_per_1000_second_half": slope_per_1000(
            sampler.rows, "rss_anon_mb", args.requests // 2
        ),
        "fds_range": _range(sampler.rows, "fds"),
        "threads_range": _range(sampler.rows, "threads"),
        "workers_range": _range(sampler.rows, "sandbox_workers"),
        "kill": {
            "records_before": before_kill,
            "after_restart": checks,
            "lost": {
                name: max(0, before_kill.get(name, 0) - checks[name]["records"])
                for name in ("tool", "plan", "traces")
            },
            "kill_load_outcomes": dict(kill_load.outcomes),
            "orphan_workers": len(orphans),
            "restarted_outcomes": dict(after.outcomes),
        },
    }


def _orphan_worker(process: psutil.Process) -> bool:
    """A sandbox worker whose server is gone (adopted by init)."""
    command = " ".join(process.info["cmdline"] or [])
    return process.info["ppid"] == 1 and "vpagent.sandbox.worker" in command


def _range(rows: list[dict[str, Any]], key: str) -> list[int]:
    values = [row[key] for row in rows if row["requests"] > WARM_UP] or [0]
    return [min(values), max(values)]


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["samples"]
    x = [row["requests"] for row in rows]
    keys = ["rss_mb", "rss_anon_mb", "fds", "threads", "sandbox_workers", "trace_files"]
    figure, axes = plt.subplots(len(keys), 1, figsize=(7, 9), sharex=True)
    for axis, key in zip(axes, keys, strict=True):
        axis.plot(x, [row[key] for row in rows], marker=".")
        axis.set_ylabel(key.replace("_", " "), fontsize=8)
        axis.axvline(WARM_UP, color="grey", linewidth=0.5)
    axes[-1].set_xlabel("requests")
    figure.suptitle(f"vpagent serve soak ({result['planner']} planner, loopback, nice -n 10)")
    figure.tight_layout()
    figure.savefig(path, dpi=90)


def write_report(result: dict[str, Any], args: argparse.Namespace) -> None:
    path = HERE / "results" / (f"soak-{args.name}" if args.name else "soak")
    meta = {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)), **vars(args)}
    path.with_suffix(".json").write_text(json.dumps({**meta, **result}, indent=2) + "\n")
    plot(result, path.with_suffix(".png"))
    kill = result["kill"]
    entries = [row["trace_entry_kb"] for row in result["samples"] if row.get("trace_entry_kb")]
    entry_kb = statistics.median(entries) if entries else 0.0
    statuses = ", ".join(f"{k} x{v}" for k, v in sorted(result["outcomes"].items()))
    text = (
        f"# Soak: `vpagent serve` under mixed load, then kill -9 ({meta['cores']} shared cores, "
        f"{meta['cpu']}, run under `nice -n 10` beside other work)\n\n"
        f"`benchmarks/bench_soak.py`: {args.requests} requests from {args.clients} client threads "
        f"against `max_concurrent = {args.max_concurrent}`, `max_queue = {args.max_queue}`; "
        f"planner: {PLANNERS[args.planner]}; disk tool and plan caches and trace directory; "
        "loopback. Kinds, in turn: ask multipart x3, ask JSON, chat completions, trace fetch, "
        "not-an-image, truncated JPEG, bad data URL, a disconnect after 50 ms. "
        "Outcomes (kind:status): "
        f"{statuses}.\n\n"
        f"![soak]({path.with_suffix('.png').name})\n\n"
        "| measure (after the first 500 requests) | value | goal |\n|---|---|---|\n"
        f"| RSS growth, MB per 1,000 requests (least squares) | "
        f"{result['rss_growth_mb_per_1000']} | < 1 |\n"
        f"| anonymous RSS (the heap) growth, MB per 1,000 requests, after the server's trace "
        f"store is full ({TRACES_KEPT} traces, at {result['trace_store_full_at']} requests) | "
        f"{result['anon_growth_mb_per_1000_store_full']} | < 1 |\n"
        f"| anonymous RSS growth, MB per 1,000 requests, over the second half of the run "
        f"(warm-up: the first half) | {result['anon_growth_mb_per_1000_second_half']} | < 1 |\n"
        f"| open file descriptors, min-max | {result['fds_range']} | flat |\n"
        f"| threads, min-max | {result['threads_range']} | flat |\n"
        f"| live sandbox workers, min-max | {result['workers_range']} | flat |\n\n"
        f"One entry of the server's trace store (a trace's JSON and its HTML rationale) is "
        f"about {entry_kb:.0f} KB (median of the samples), so the store holds about "
        f"{entry_kb * TRACES_KEPT / 1024:.0f} MB once full. RSS also counts the mapped model "
        "files, which the kernel drops and reads back as the machine's memory pressure "
        "changes: the anonymous part is where a leak would show. The server's log holds "
        f"{result['server_errors']['5xx']} 5xx answers and "
        f"{result['server_errors']['tracebacks']} tracebacks.\n\n"
        f"kill -9 after {args.kill_after} requests of a second load: records before the kill "
        f"{kill['records_before']}; after the restart tool cache {kill['after_restart']['tool']}, "
        f"plan cache {kill['after_restart']['plan']}, traces {kill['after_restart']['traces']}; "
        f"lost {kill['lost']}; orphaned sandbox "
        f"workers {kill['orphan_workers']}; the restarted server answered "
        f"{kill['restarted_outcomes']}.\n\n"
        f"Soak wall time {result['soak_s']} s (shared machine: timings are not comparable).\n"
    )
    path.with_suffix(".md").write_text(text)
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=150)
    parser.add_argument("--planner", choices=sorted(PLANNERS), default="scripted")
    parser.add_argument("--name", default="")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.planner == "scripted":
            sys.path.insert(0, str(ROOT))
            from tests.fixtures.scripted_openai import ScriptedOpenAI

            planner = stack.enter_context(ScriptedOpenAI(PROGRAM)).env()
        else:
            planner = {"VPAGENT_LLM__MODEL": "smollm2-135m", "VPAGENT_LLM__THREADS": "1"}
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="vpagent-soak-"))
        result = soak(args, Path(folder), planner) | {"planner": args.planner}
    write_report(result, args)


if __name__ == "__main__":
    main()
