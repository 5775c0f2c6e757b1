"""Planner latency levers on the dev set, all variants in one run, interleaved per question.

Run: .venv/bin/python benchmarks/bench_planner.py [--variants baseline,prefix,prefix-retrieve2]
     [--limit N] [--threads 1] [--model qwen2.5-coder-1.5b] [--bank BANK.toml] (prefix-bank2)

Each variant is a settings override of the embedded default (offline pack). For every dev
question every variant answers in turn (the order rotates per question, so load on a shared
machine falls on all variants alike); plan and execute seconds come from the agent's timings,
token counts from the LLM server's usage (prompt, cached, generated). Start-up (model load and
the prompt prefix: built, or restored from disk) is timed per variant and reported apart. The
variants share one on-disk tool-result cache, so execute seconds are comparable only roughly;
its keys know the tool settings and the vpagent version, not edits to the tools' code: after
such an edit, delete ``CACHE_DIR/tools``.
Writes a markdown table and the raw rows to benchmarks/results/planner.md / planner.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py, beside this script

import vpagent  # noqa: F401  (offline environment defaults)
from vpagent.agent import Agent, build_agent
from vpagent.config import load_settings
from vpagent.evaluation.datasets import load_dataset
from vpagent.evaluation.evaluate import score_item

RESULTS = Path(__file__).parent / "results"
DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev.jsonl"

# Today's configuration before this benchmark's levers, then each lever added.
VARIANTS: dict[str, dict[str, Any]] = {
    "baseline": {
        "agent": {"fixed_examples": 0, "examples_per_prompt": 6, "api_spec": "full",
                  "prefill_reply": False},
        "llm": {"prompt_cache": False},
    },
    "prefix": {"agent": {}, "llm": {}},
    "prefix-retrieve2": {"agent": {"examples_per_prompt": 2}, "llm": {}},
    # with --bank BANK.toml (from `vpagent distill examples`): retrieval also draws on it
    "prefix-bank2": {"agent": {"examples_per_prompt": 2}, "llm": {}},
    # the offline detector at another score threshold (benchmarks/bench_threshold.py)
    "prefix-det0.3": {"agent": {}, "llm": {},
                      "tools": {"detector": {"backend": "ssd-coco",
                                             "options": {"score_threshold": 0.3}}}},
}  # fmt: skip


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


def _build(
    name: str, model: str, threads: int, cache_dir: Path, bank: Path | None
) -> tuple[Agent, float, str]:
    override = VARIANTS[name]
    if name == "prefix-bank2":
        if bank is None:
            raise SystemExit("the prefix-bank2 variant needs --bank BANK.toml")
        override = {**override, "agent": {**override["agent"], "example_banks": [str(bank)]}}
    llm = {"model": model, "threads": threads, "prompt_cache_dir": str(cache_dir),
           **override["llm"]}  # fmt: skip
    # One on-disk tool cache for all variants: a photo's detections are computed once, so the
    # run measures planning; execute seconds are then a lower bound for all but the first.
    cache = {"directory": str(cache_dir / "tools")}
    tools = override.get("tools", {})
    settings = load_settings(llm=llm, agent=override["agent"], cache=cache, tools=tools)
    events: list[str] = []
    started = time.perf_counter()
    agent = build_agent(settings, on_event=lambda event: events.append(str(event)))
    prefix = [event for event in events if event.startswith("planner prompt prefix")]
    return agent, time.perf_counter() - started, prefix[-1] if prefix else "no prefix"


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    plan = [r["plan_s"] for r in rows]
    return {
        "n": len(rows),
        "accuracy": statistics.mean(r["score"] for r in rows),
        "unanswered": sum(r["answer"] is None for r in rows),
        "prompt_tokens": statistics.median(r["usage"].get("prompt_tokens", 0) for r in rows),
        "cached_tokens": statistics.median(r["usage"].get("cached_tokens", 0) for r in rows),
        "generated_tokens": statistics.median(r["usage"].get("generated_tokens", 0) for r in rows),
        "plan_median_s": statistics.median(plan),
        "plan_p90_s": _percentile(plan, 0.9),
        "execute_median_s": statistics.median(r["execute_s"] for r in rows),
        "total_median_s": statistics.median(r["total_s"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="baseline,prefix")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--dataset", type=Path, default=DEV)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/vpagent-bench-prefix"))
    parser.add_argument("--tag", default="planner")
    parser.add_argument("--bank", type=Path, help="Extra example bank for prefix-bank2.")
    args = parser.parse_args()
    names = args.variants.split(",")
    items = load_dataset(args.dataset)[: args.limit or None]
    agents, startup = {}, {}
    for name in names:
        agent, seconds, event = _build(name, args.model, args.threads, args.cache_dir, args.bank)
        agents[name], startup[name] = agent, {"seconds": round(seconds, 1), "prefix": event}
        print(f"{name}: started in {seconds:.1f} s ({event})", flush=True)
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for index, item in enumerate(items):
        order = names[index % len(names) :] + names[: index % len(names)]
        for name in order:
            result = agents[name].ask(item.image, item.question)
            row = {
                "id": item.id, "type": item.type, "answer": result.answer,
                "score": score_item(item, result.answer), "usage": result.usage,
                "error_kind": result.error_kind, "program": result.program,
                **{key: result.timings.get(key, 0.0) for key in ("plan_s", "execute_s", "total_s")},
            }  # fmt: skip
            rows[name].append(row)
            print(f"[{index + 1}/{len(items)}] {name:18} plan {row['plan_s']:5.1f} s "
                  f"{result.usage} {item.question!r} -> {result.answer!r}", flush=True)  # fmt: skip
    for agent in agents.values():
        agent.close()
    summaries = {name: _summary(rows[name]) for name in names}
    _write(args, summaries, startup, rows)


def _write(args: argparse.Namespace, summaries: dict, startup: dict, rows: dict) -> None:
    header = (
        "| variant | prompt tok | cached tok | generated tok | plan s median | plan s p90 "
        "| execute s median | ask s median | accuracy | unanswered | start-up |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {name} | {s['prompt_tokens']:.0f} | {s['cached_tokens']:.0f} | "
        f"{s['generated_tokens']:.0f} | {s['plan_median_s']:.1f} | {s['plan_p90_s']:.1f} | "
        f"{s['execute_median_s']:.1f} | {s['total_median_s']:.1f} | {100 * s['accuracy']:.1f}% | "
        f"{s['unanswered']} | {startup[name]['seconds']} s, {startup[name]['prefix']} |"
        for name, s in summaries.items()
    ]
    facts = (
        f"{time.strftime('%Y-%m-%d %H:%M')}, {cpu_model()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end; model {args.model}, "
        f"threads {args.threads}, {len(next(iter(rows.values())))} questions of {args.dataset.name}"
    )
    table = f"{facts}\n\n{header}" + "\n".join(lines) + "\n"
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag}.md").write_text(table, encoding="utf-8")
    payload = {"facts": facts, "summaries": summaries, "startup": startup, "rows": rows}
    (RESULTS / f"{args.tag}.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
