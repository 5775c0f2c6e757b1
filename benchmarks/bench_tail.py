"""Where a question's time goes, per path, from `vpagent eval` results files (issue 33).

Run: .venv/bin/python benchmarks/bench_tail.py RESULTS.jsonl [RESULTS.jsonl ...] [--name NAME]
     [--label LABEL ...] [--pair]

Each item's path is read from its attempt record (``attempts`` in the results file): the first
program answered; a program failed and a repair answered; programs failed and the fallback
answered; planning gave no program. A failed program's kind is its reason, with ``cannot_answer``
where a tool refused (a step's reason) even though the program ended as a ``tool_error``. For each
path: items, accuracy, seconds (median, p90, max of ``total_s``), and the mean time of the first
planning round, of the repair rounds, of execution and of the fallback (``total_s`` less planning
and execution where the fallback's own time was not kept).

With ``--pair`` the files are before/after pairs (before1 after1 before2 after2 ...): each
pair also gets accuracy with its 95% interval, latency median/p90/max and their after/before
ratios, and `vpagent eval compare`'s item-by-item McNemar test.

Writes benchmarks/results/tail[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from vpagent.evaluation.compare import compare_results, read_results
from vpagent.evaluation.stats import interval

RESULTS = Path(__file__).parent / "results"
LLM_TOOLS = {"simple_query", "llm_query"}  # program steps that ask the language model


def failure_kind(attempt: dict[str, Any]) -> str:
    """Why one program gave no answer: a tool's refusal, else the program's own reason."""
    if any(step.get("error_kind") == "cannot_answer" for step in attempt.get("steps") or []):
        return "cannot_answer"
    return str(attempt.get("reason"))


def path_of(item: dict[str, Any]) -> str:
    """How the item was answered: ok, repaired, fallback or planning, with the first failure."""
    attempts = item.get("attempts") or []
    programs = [a for a in attempts if a.get("kind", "program") == "program"]
    if not programs:
        return "no attempt record"
    first = programs[0]
    if first.get("reason") is None:
        return "first program ok"
    if first.get("reason") == "planning":
        return "planning failed"
    kind = failure_kind(first)
    answered = [a for a in programs[1:] if a.get("reason") is None]
    if answered:
        return f"{kind}, then repaired"
    if any(a.get("kind") == "fallback" for a in attempts):
        return f"{kind}, then fallback"
    return f"{kind}, no answer"


def timings(item: dict[str, Any]) -> dict[str, float]:
    """First planning round, repair rounds, execution and fallback seconds of one item."""
    attempts = item.get("attempts") or []
    programs = [a for a in attempts if a.get("kind", "program") == "program"]
    fallback = [a for a in attempts if a.get("kind") == "fallback"]
    plan = [float(a.get("plan_s") or 0.0) for a in programs]
    execute = sum(float(a.get("execute_s") or 0.0) for a in programs)
    steps = [step for a in programs for step in a.get("steps") or []]
    llm_tools = sum(float(s.get("duration_s") or 0.0) for s in steps if s.get("tool") in LLM_TOOLS)
    kept = sum(float(a.get("execute_s") or 0.0) for a in fallback)
    total = float(item.get("total_s") or 0.0)
    return {
        "total_s": total,
        "first_plan_s": plan[0] if plan else 0.0,
        "repair_plan_s": sum(plan[1:]),
        "execute_s": execute,
        "llm_tools_s": llm_tools,
        "fallback_s": kept
        if kept
        else (max(total - sum(plan) - execute, 0.0) if fallback else 0.0),
        "rounds": float(len([a for a in programs if a.get("reason") != "deadline"])),
    }


def model_calls(item: dict[str, Any]) -> int:
    """Language-model calls of one item, a cost that does not depend on the machine's load:
    one per program planned (fix replies are not recorded), one per simple_query or
    llm_query step, and the fallback's (two where it was refused and then guessed: its
    message then names the refusal in brackets, as before issue 33)."""
    calls = 0
    for attempt in item.get("attempts") or []:
        if attempt.get("kind") == "fallback":
            calls += 2 if "(" in (attempt.get("message") or "") else 1
        elif attempt.get("reason") != "deadline":
            calls += 1 + sum(s.get("tool") in LLM_TOOLS for s in attempt.get("steps") or [])
    return calls


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank, as the issue's tables use)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def table(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per path (and one for all items), slowest paths last."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        groups[path_of(item)].append(item)
    rows = []
    for path, group in [*sorted(groups.items()), ("all", items)]:
        times = [timings(item) for item in group]
        totals = [t["total_s"] for t in times]
        rows.append(
            {
                "path": path,
                "n": len(group),
                "accuracy": statistics.fmean(float(i.get("score") or 0.0) for i in group),
                "median_s": statistics.median(totals),
                "p90_s": percentile(totals, 0.9),
                "max_s": max(totals),
                "share_of_time": sum(totals) / max(sum(timings(i)["total_s"] for i in items), 1e-9),
                **{
                    f"mean_{key}": statistics.fmean(t[key] for t in times)
                    for key in (
                        "first_plan_s",
                        "repair_plan_s",
                        "execute_s",
                        "llm_tools_s",
                        "fallback_s",
                        "rounds",
                    )
                },
            }
        )
    rows.sort(key=lambda row: (row["path"] == "all", row["median_s"]))
    return rows


def markdown(label: str, rows: list[dict[str, Any]]) -> str:
    """One table: the paths of one results file."""
    lines = [
        f"### {label}",
        "",
        "| path | n | acc | median s | p90 s | max s | share of time | first plan s "
        "| repair plans s | execute s | of which LLM tools s | fallback s | programs |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['path']} | {row['n']} | {row['accuracy']:.2f} | {row['median_s']:.1f} | "
            f"{row['p90_s']:.1f} | {row['max_s']:.1f} | {row['share_of_time']:.0%} | "
            f"{row['mean_first_plan_s']:.1f} | {row['mean_repair_plan_s']:.1f} | "
            f"{row['mean_execute_s']:.1f} | {row['mean_llm_tools_s']:.1f} | "
            f"{row['mean_fallback_s']:.1f} | "
            f"{row['mean_rounds']:.1f} |"
        )
    return "\n".join(lines)


def summary(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy (95% bootstrap interval) and latency of one run."""
    scores = [float(item.get("score") or 0.0) for item in items]
    totals = [float(item.get("total_s") or 0.0) for item in items]
    low, high = interval(scores)
    return {
        "n": len(items),
        "accuracy": statistics.fmean(scores),
        "interval": [low, high],
        "median_s": statistics.median(totals),
        "p90_s": percentile(totals, 0.9),
        "max_s": max(totals),
        "over_20_s": sum(total > 20 for total in totals),
        "repair_rounds": sum(timings(item)["rounds"] - 1 for item in items),
        "model_calls": sum(model_calls(item) for item in items),
        "deadline_stops": sum(
            any(a.get("reason") == "deadline" for a in item.get("attempts") or []) for item in items
        ),
    }


def pair(label: str, before: Path, after: Path) -> tuple[dict[str, Any], str]:
    """Before and after on one set: summaries, ratios and the item-by-item McNemar test."""
    first, second = read_results(before), read_results(after)
    a = summary([i.model_dump(mode="json") for i in first.results.values()])
    b = summary([i.model_dump(mode="json") for i in second.results.values()])
    overall = compare_results(first, second).overall
    ratios = {key: b[key] / a[key] for key in ("median_s", "p90_s", "max_s") if a[key]}
    report = {"before": a, "after": b, "after_over_before": ratios, "mcnemar": overall.model_dump()}
    rows = [
        f"### {label}: before / after",
        "",
        "| run | n | accuracy (95% CI) | median s | p90 s | max s | over 20 s | repair rounds "
        "| deadline stops | model calls |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, run in (("before", a), ("after", b)):
        low, high = run["interval"]
        rows.append(
            f"| {name} | {run['n']} | {run['accuracy']:.1%} ({low:.1%}-{high:.1%}) | "
            f"{run['median_s']:.1f} | {run['p90_s']:.1f} | {run['max_s']:.1f} | "
            f"{run['over_20_s']} | {run['repair_rounds']:.0f} | {run['deadline_stops']} | "
            f"{run['model_calls']} |"
        )
    rows.append(
        "| after / before | | | "
        + " | ".join(
            f"{ratios.get(key, float('nan')):.2f}" for key in ("median_s", "p90_s", "max_s")
        )
        + " | | | | |"
    )
    rows += [
        "",
        f"Item by item (n={overall.n}): right before only {len(overall.only_a)} "
        f"({', '.join(overall.only_a) or '-'}), right after only {len(overall.only_b)} "
        f"({', '.join(overall.only_b) or '-'}); exact McNemar p = {overall.p_value:.3f}.",
    ]
    return report, "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="eval results files (JSONL)")
    parser.add_argument("--label", nargs="*", default=[], help="a label per results file")
    parser.add_argument("--name", default="", help="suffix of the output files")
    parser.add_argument("--note", default="", help="a line about the machine and the run")
    parser.add_argument("--pair", action="store_true", help="the files are before/after pairs")
    args = parser.parse_args()
    labels = args.label + [path.name for path in args.results[len(args.label) :]]
    report: dict[str, Any] = {"note": args.note, "files": {}}
    sections = [
        "# Where the time goes (issue 33)",
        "",
        "Means are per item of the path; `fallback s` is the fallback answer's own time; "
        "`programs` counts the programs run; `of which LLM tools`: the part of execution in "
        "simple_query and llm_query (the language model over the scene description). "
        "Percentiles are nearest-rank.",
    ]
    if args.note:
        sections += ["", args.note]
    for label, path in zip(labels, args.results, strict=True):
        items = [item.model_dump(mode="json") for item in read_results(path).results.values()]
        rows = table(items)
        report["files"][label] = {"path": str(path), "rows": rows}
        sections += ["", markdown(f"{label} (n={len(items)})", rows)]
    if args.pair:
        report["pairs"] = {}
        for index in range(0, len(args.results) - 1, 2):
            label = labels[index].removesuffix(" before")
            found, text = pair(label, args.results[index], args.results[index + 1])
            report["pairs"][label] = found
            sections += ["", text]
    stem = "tail" + (f"-{args.name}" if args.name else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{stem}.md").write_text("\n".join(sections) + "\n")
    print("\n".join(sections))


if __name__ == "__main__":
    main()
