"""What reaching vpagent through MCP costs an agent framework, per question, on loopback.

Run: .venv/bin/python benchmarks/bench_mcp.py [--calls 20] [--name NAME]

The same question ("How many dogs are there?" about the dev set's two_dogs.jpg, sent as base64)
answered four ways, each ``--calls`` times after one warm-up call: ``Agent.ask`` in this process;
the LangChain tool in this process; a live ``vpagent mcp`` over stdio; a live
``vpagent mcp --http`` over streamable HTTP (the official ``mcp`` client for both). The planner
is scripted (an OpenAI-compatible endpoint on loopback that always returns the same program), so
the figures are the interfaces' own cost (transport, base64, JSON, the rationale PNG) on top of
the program run by the offline pack's detector, not planning time. The two servers' start-up
(process start to the first tool list) is timed too.

Writes benchmarks/results/mcp[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.resolve().parent / "shared" / "data"
PROGRAM = "```python\ndef execute_command(image):\n    return str(len(image.find('dog')))\n```"
QUESTION = "How many dogs are there?"


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": statistics.median(ordered) * 1000,
        "p90_ms": ordered[max(0, int(0.9 * len(ordered)) - 1)] * 1000,
        "min_ms": ordered[0] * 1000,
    }


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    call()  # warm-up: models loaded, caches filled
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


async def timed_async(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    await call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def in_process(image: bytes, calls: int, env: dict[str, str]) -> dict[str, list[float]]:
    os.environ.update(env)
    from vpagent import build_agent, load_settings
    from vpagent.integrations.langchain import AskImageTool

    with build_agent(load_settings()) as agent:
        assert agent.ask(image, QUESTION).answer == "2"
        tool = AskImageTool.around(agent)
        encoded = base64.b64encode(image).decode()
        call = {"name": "ask_image", "id": "1", "type": "tool_call",
                "args": {"image": encoded, "question": QUESTION}}  # fmt: skip
        return {
            "Agent.ask (in process)": timed(lambda: agent.ask(image, QUESTION), calls),
            "LangChain tool (in process)": timed(lambda: tool.invoke(call), calls),
        }


async def over_mcp(session: Any, image: bytes, calls: int) -> list[float]:
    arguments = {"image": base64.b64encode(image).decode(), "question": QUESTION}

    async def ask() -> None:
        result = await session.call_tool("ask_image", arguments)
        assert (result.structuredContent or {}).get("answer") == "2", result

    return await timed_async(ask, calls)


async def stdio(image: bytes, calls: int, env: dict[str, str]) -> tuple[float, list[float]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    started = time.perf_counter()
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "vpagent", "mcp"], env={**os.environ, **env}
    )
    with open(os.devnull, "w") as quiet:
        async with (
            stdio_client(server, errlog=quiet) as (reading, writing),
            ClientSession(reading, writing) as session,
        ):
            await session.initialize()
            await session.list_tools()
            startup = time.perf_counter() - started
            return startup, await over_mcp(session, image, calls)


async def http(image: bytes, calls: int, env: dict[str, str]) -> tuple[float, list[float]]:
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "vpagent", "mcp", "--http", "--port", str(port)],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        async with (
            streamable_http_client(url) as (reading, writing, _),
            ClientSession(reading, writing) as session,
        ):
            await session.initialize()
            await session.list_tools()
            startup = time.perf_counter() - started
            return startup, await over_mcp(session, image, calls)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--name", default="")
    options = parser.parse_args()
    from tests.fixtures.scripted_openai import ScriptedOpenAI

    image = (DATA / "images" / "two_dogs.jpg").read_bytes()
    load = os.getloadavg()[0]
    with ScriptedOpenAI(PROGRAM) as llm:
        env = llm.env()
        rows = in_process(image, options.calls, env)
        stdio_start, rows["MCP over stdio (vpagent mcp)"] = asyncio.run(
            stdio(image, options.calls, env)
        )
        http_start, rows["MCP over streamable HTTP (vpagent mcp --http)"] = asyncio.run(
            http(image, options.calls, env)
        )
    base = statistics.median(rows["Agent.ask (in process)"])
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_model(),
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "calls": options.calls,
        "interfaces": {name: summary(times) for name, times in rows.items()},
        "startup_s": {"stdio": stdio_start, "http": http_start},
    }
    lines = [
        "# MCP and tool interfaces: cost per question on loopback",
        "",
        f"{report['date']}, {report['cpu']}, 2 cores shared with other jobs (load "
        f"{load:.1f} before, {report['load_after']:.1f} after): compare the rows with each "
        f"other, not with other days. {options.calls} calls each after one warm-up; the same "
        "question about two_dogs.jpg (base64), a scripted planner (no planning time), the "
        "offline pack's detector. `python benchmarks/bench_mcp.py`",
        "",
        "| interface | median ms | p90 ms | min ms | median vs Agent.ask |",
        "|---|---|---|---|---|",
    ]
    for name, times in rows.items():
        row = summary(times)
        lines.append(
            f"| {name} | {row['median_ms']:.0f} | {row['p90_ms']:.0f} | {row['min_ms']:.0f} | "
            f"{statistics.median(times) / base:.2f}x |"
        )
    lines += [
        "",
        f"Start-up to the first tool list (process start, imports, agent): stdio "
        f"{stdio_start:.1f} s, HTTP {http_start:.1f} s.",
    ]
    suffix = f"-{options.name}" if options.name else ""
    out = HERE / "results" / f"mcp{suffix}"
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
