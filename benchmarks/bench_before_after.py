"""The dev set before and after a change, in one run: an older commit against this checkout.

Run: .venv/bin/python benchmarks/bench_before_after.py [--before 102cdf9] [--dataset DEV.jsonl]
     [--limit N] [--name NAME] [--rows BEFORE.jsonl AFTER.jsonl]

The older commit is checked out into a temporary git worktree; ``vpagent eval`` runs there and
then here, one after the other, with the same interpreter and packages, the embedded default
and a fresh in-memory tool cache each. The default ``--before`` is the last commit before the
offline-pack work of issue 11 (relations, ``locate``, tiles, colour masks, answers always).
Reports accuracy per type, questions left without an answer, seconds per question, and each
question whose answer or program differs. ``--rows`` compares two saved outputs instead.

Writes benchmarks/results/before-after[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections import defaultdict
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "before-after"
DEFAULT_DATASET = ROOT.resolve().parent / "shared" / "data" / "dev.jsonl"
DEFAULT_BEFORE = "102cdf9"  # the commit before b957fc7, the offline-pack work of issue 11


def run_eval(python: Path, root: Path, dataset: Path, out: Path, limit: int | None) -> list[dict]:
    """``vpagent eval`` with ``python`` (whose path holds the code to measure); one dict each."""
    env = {key: value for key, value in os.environ.items() if key != "VPAGENT_CONFIG"}
    command = [str(python), "-m", "vpagent", "eval", str(dataset), "--out", str(out), "--json"]
    if limit is not None:
        command += ["--limit", str(limit)]
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def environment_for(checkout: Path, folder: Path) -> Path:
    """A Python whose import path holds ``checkout``'s code and this interpreter's packages.

    The sandbox starts its worker with ``python -I``, which ignores PYTHONPATH: with
    PYTHONPATH alone the worker would import this checkout's vpagent, not the older one. A
    throwaway venv whose .pth files name the code and the packages reaches the worker too.
    Since the one-import-name layout, tools/, distill/ and apps/ install beneath vpagent: such
    a checkout is laid out as installed in a copy first.
    """
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    code = checkout
    if "[tool.setuptools.package-dir]" in (checkout / "pyproject.toml").read_text():
        code = folder / "code"
        shutil.copytree(checkout / "vpagent", code / "vpagent")
        for name in ("tools", "distill", "apps"):
            shutil.copytree(checkout / name, code / "vpagent" / name)
    site = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    (site / "before-code.pth").write_text(f"{code}\n")
    (site / "packages.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n")
    return venv / "bin" / "python"


def run_both(
    before: str, before_rev: str, after_rev: str, dataset: Path, limit: int | None
) -> tuple[list[dict], list[dict]]:
    """``vpagent eval`` at ``before`` (in a temporary worktree), then in this checkout."""
    with tempfile.TemporaryDirectory(prefix="vpagent-before-") as tmp:
        worktree = Path(tmp) / "before"
        git("worktree", "add", "--detach", str(worktree), before_rev)
        try:
            print(f"before: {before_rev} ...", flush=True)
            python = environment_for(worktree, Path(tmp))
            before_rows = run_eval(python, worktree, dataset, Path(tmp) / "before.jsonl", limit)
        finally:
            git("worktree", "remove", "--force", str(worktree))
        print(f"after: {after_rev} ...", flush=True)
        after_rows = run_eval(Path(sys.executable), ROOT, dataset, Path(tmp) / "after.jsonl", limit)
    return before_rows, after_rows


def summary(rows: list[dict]) -> dict:
    by_type: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        by_type[row["type"]].append(row["score"])
    unanswered = sum(1 for row in rows if not (row.get("prediction") or "").strip())
    return {
        "n": len(rows),
        "accuracy": statistics.mean(row["score"] for row in rows),
        "right": sum(row["score"] for row in rows),
        "per_type": {kind: (sum(s), len(s)) for kind, s in sorted(by_type.items())},
        "unanswered": unanswered,
        "seconds_median": statistics.median(row["total_s"] for row in rows),
        "seconds_mean": statistics.mean(row["total_s"] for row in rows),
    }


def table(before: dict, after: dict, before_rev: str, after_rev: str) -> str:
    def cell(right: float, n: int) -> str:
        return f"{right:g}/{n} ({right / n:.1%})"

    lines = [
        f"| type | n | before ({before_rev}) | after ({after_rev}) |",
        "|---|---|---|---|",
    ]
    for kind, (right, n) in after["per_type"].items():
        old = before["per_type"].get(kind, (0, n))[0]
        lines.append(f"| {kind} | {n} | {cell(old, n)} | {cell(right, n)} |")
    lines.append(
        f"| **all** | {after['n']} | **{cell(before['right'], before['n'])}** | "
        f"**{cell(after['right'], after['n'])}** |"
    )
    lines.append(f"| left without an answer | | {before['unanswered']} | {after['unanswered']} |")
    lines.append(
        f"| seconds per question, median (mean) | | {before['seconds_median']:.1f} "
        f"({before['seconds_mean']:.1f}) | {after['seconds_median']:.1f} "
        f"({after['seconds_mean']:.1f}) |"
    )
    return "\n".join(lines)


def differences(before: list[dict], after: list[dict]) -> list[str]:
    """One line per question whose answer or program differs between the two runs."""
    earlier = {row["id"]: row for row in before}
    lines = []
    for row in after:
        old = earlier.get(row["id"])
        if old is None:
            lines.append(f"- {row['id']}: only in the after run")
            continue
        changed = [key for key in ("prediction", "program") if old.get(key) != row.get(key)]
        if changed:
            lines.append(
                f"- {row['id']} ({', '.join(changed)}): {old.get('prediction')!r} -> "
                f"{row.get('prediction')!r} (score {old['score']:g} -> {row['score']:g})"
            )
    return lines


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=DEFAULT_BEFORE)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--name", help="suffix of the results files")
    parser.add_argument(
        "--rows",
        type=Path,
        nargs=2,
        metavar=("BEFORE.jsonl", "AFTER.jsonl"),
        help="compare two saved `vpagent eval` outputs instead of running both",
    )
    args = parser.parse_args()
    stem = f"{RESULTS}-{args.name}" if args.name else str(RESULTS)
    dataset = args.dataset.resolve()
    before_rev = git("rev-parse", "--short", args.before)
    after_rev = git("rev-parse", "--short", "HEAD")
    if git("status", "--short", "--untracked-files=no"):
        after_rev += "+uncommitted"
    if args.rows:
        before_rows, after_rows = (
            [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            for path in args.rows
        )
    else:
        before_rows, after_rows = run_both(args.before, before_rev, after_rev, dataset, args.limit)
    before, after = summary(before_rows), summary(after_rows)
    limit = f", first {args.limit} questions" if args.limit else ""
    text = table(before, after, before_rev, after_rev)
    changed = differences(before_rows, after_rows)
    text += "\n\nQuestions whose answer or program differs: " + (
        f"{len(changed)}\n\n" + "\n".join(changed) if changed else "none."
    )
    how = (
        f"`--rows {' '.join(str(path) for path in args.rows)}`: two saved `vpagent eval` outputs"
        if args.rows
        else f"`--before {before_rev}`, embedded default, fresh tool cache per side"
    )
    Path(f"{stem}.md").write_text(
        f"# {dataset.name}{limit}: before and after\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs. `benchmarks/bench_before_after.py` "
        f"{how}.\n\n{text}\n"
    )
    Path(f"{stem}.json").write_text(
        json.dumps({"before": before_rows, "after": after_rows}, indent=1) + "\n"
    )
    print(text, f"\nwritten to {stem}.md")


if __name__ == "__main__":
    main()
