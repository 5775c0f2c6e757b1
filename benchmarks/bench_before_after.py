"""The dev set before and after a change, in one run: an older commit against this checkout.

Run: .venv/bin/python benchmarks/bench_before_after.py [--before 102cdf9] [--dataset DEV.jsonl]
     [--limit N] [--name NAME] [--rows BEFORE.jsonl AFTER.jsonl]

The older commit is checked out into a temporary git worktree; ``vpagent eval`` runs there and
then here, one after the other, with the same interpreter and packages, the embedded default
and a fresh in-memory tool cache each. The default ``--before`` is the last commit before the
offline-pack work of issue 11 (relations, ``locate``, tiles, colour masks, answers always).
The comparison is `vpagent eval compare`'s (accuracy per type, the questions right in one run
only, an exact McNemar p-value), plus each question whose program differs. ``--rows`` compares
two saved outputs instead of running both.

Writes benchmarks/results/before-after[-NAME].md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from machine import cpu_model  # benchmarks/machine.py, beside this script

from vpagent.evaluation.compare import ResultsFile, compare_results, read_results

HERE = Path(__file__).parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "before-after"
DEFAULT_DATASET = ROOT.resolve().parent / "shared" / "data" / "dev.jsonl"
DEFAULT_BEFORE = "102cdf9"  # the commit before b957fc7, the offline-pack work of issue 11


def run_eval(python: Path, root: Path, dataset: Path, out: Path, limit: int | None) -> Path:
    """``vpagent eval --out`` with ``python`` (whose path holds the code to measure)."""
    env = {key: value for key, value in os.environ.items() if key != "VPAGENT_CONFIG"}
    command = [str(python), "-m", "vpagent", "eval", str(dataset), "--out", str(out), "--json"]
    if limit is not None:
        command += ["--limit", str(limit)]
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    return out


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


def run_both(before_rev: str, dataset: Path, limit: int | None, folder: Path) -> tuple[Path, Path]:
    """``vpagent eval`` at ``before_rev`` (in a temporary worktree), then in this checkout."""
    worktree = folder / "before"
    git("worktree", "add", "--detach", str(worktree), before_rev)
    try:
        print(f"before: {before_rev} ...", flush=True)
        python = environment_for(worktree, folder)
        before = run_eval(python, worktree, dataset, folder / "before.jsonl", limit)
    finally:
        git("worktree", "remove", "--force", str(worktree))
    print("after: this checkout ...", flush=True)
    return before, run_eval(Path(sys.executable), ROOT, dataset, folder / "after.jsonl", limit)


def report(before: ResultsFile, after: ResultsFile, names: tuple[str, str]) -> tuple[str, dict]:
    """The markdown of `vpagent eval compare`, plus each question whose program changed."""
    comparison = compare_results(before, after)
    lines = [
        f"| type | n | before ({names[0]}) | after ({names[1]}) | right before only | "
        "right after only | p (McNemar) |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = [*comparison.per_type.items(), ("**all**", comparison.overall)]
    for kind, row in rows:
        lines.append(
            f"| {kind} | {row.n} | {row.accuracy_a:.1%} | {row.accuracy_b:.1%} | "
            f"{', '.join(row.only_a) or '-'} | {', '.join(row.only_b) or '-'} | {row.p_value:.3g} |"
        )
    changed = [
        f"- {item_id}: {old.prediction!r} -> {new.prediction!r}"
        for item_id, new in after.results.items()
        if (old := before.results.get(item_id)) is not None and old.program != new.program
    ]
    lines += ["", f"Questions whose program differs: {len(changed) or 'none'}", "", *changed]
    return "\n".join(lines), comparison.model_dump(mode="json")


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
    with tempfile.TemporaryDirectory(prefix="vpagent-before-") as tmp:
        paths = args.rows or run_both(before_rev, dataset, args.limit, Path(tmp))
        text, comparison = report(*(read_results(path) for path in paths), (before_rev, after_rev))
    limit = f", first {args.limit} questions" if args.limit else ""
    how = (
        f"`--rows {' '.join(str(path) for path in args.rows)}`: two saved `vpagent eval` outputs"
        if args.rows
        else f"`--before {before_rev}`, embedded default, fresh tool cache per side"
    )
    Path(f"{stem}.md").write_text(
        f"# {dataset.name}{limit}: before and after\n\n"
        f"Machine: {cpu_model()}, {os.cpu_count()} CPUs. `benchmarks/bench_before_after.py` "
        f"{how}; the table is `vpagent eval compare`'s.\n\n{text}\n"
    )
    Path(f"{stem}.json").write_text(json.dumps(comparison, indent=1) + "\n")
    print(text, f"\nwritten to {stem}.md")


if __name__ == "__main__":
    main()
