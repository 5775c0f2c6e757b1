"""Issue 21's student ablation on coco128, from labelled questions to the JSON, resumably.

Run: .venv/bin/python benchmarks/bench_student_ablation.py [--work DIR] [--seeds 0 1 2]
     [--max-steps 80] [--until STAGE]

Stages (each skipped when its output is already whole, so a killed run continues):

1. ``questions``  `vpagent distill questions` on coco128 (645 questions, seed 0).
2. ``traces``     `vpagent distill traces --k 5 --workers 2` with ``llm.parallel = 2``; it
                  starts from benchmarks/results/coco128-traces.jsonl.gz (the committed run)
                  when the work folder has none; a run that traced writes that file and the
                  trace card again.
3. ``augment``    `vpagent distill augment`: flips, 2 crops per photo, the extra families.
4. ``exports``    three `vpagent distill export`s, one split (seed 0, by source photo):
                  ``labels`` (answer records from labels only), ``vpd`` (VPD's mix: rationale +
                  answer records of every verified trace, labels for the rest) and
                  ``vpd-augmented`` (``vpd`` plus the augmented material).
5. ``teacher``    `vpagent eval` of the agent on the validation items and on the dev set.
6. ``students``   `vpagent distill train` per variant and seed, the same budget for all
                  (``--max-steps`` x batch 4), then `vpagent distill eval` on both sets: the
                  three data variants with the grid eyes, then the eyes variants: that
                  export seen through ``--eyes grid+regions``, ``stages`` and ``grid+ssd``
                  (``vpd-augmented+regions``, ``+stages``, ``+ssd``) to choose the eyes.
                  ``--variants`` trains only some; a longer budget is another ``--max-steps``
                  (its students sit beside the others, and the report lists them).
7. ``report``     benchmarks/results/student-ablation.json and .md, and the accuracy vs seconds
                  plot of student-then-program (`vpagent distill calibrate`'s threshold, chosen
                  on half of the validation photos, the best variant's seeds pooled). Each
                  eyes variant is also compared item by item with the grid (discordant items
                  over the seed pairs, exact McNemar test), and each eyes' frozen inputs are
                  timed per validation photo, nothing cached.

Everything runs one stage after the other on this machine, so times compare within the run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from machine import cpu_model  # benchmarks/machine.py, beside this script

HERE = Path(__file__).parent
ROOT = HERE.parent
VENV = ROOT / ".venv" / "bin"
COCO = ROOT.parent / "shared" / "data" / "coco128" / "instances.json"
DEV = ROOT.parent / "shared" / "data" / "dev.jsonl"
RESULTS = HERE / "results"
COMMITTED_TRACES = RESULTS / "coco128-traces.jsonl.gz"  # the full run, as --until traces wrote it
PLOT = ROOT / "docs" / "student-ablation.png"
# name: (export trained on, the student's eyes); the data variants first, then the eyes
DATA_VARIANTS = {
    "labels": ("labels", "grid"),
    "vpd": ("vpd", "grid"),
    "vpd-augmented": ("vpd-augmented", "grid"),
}
EYES_VARIANTS = {
    "vpd-augmented+regions": ("vpd-augmented", "grid+regions"),
    "vpd-augmented+stages": ("vpd-augmented", "stages"),
    "vpd-augmented+ssd": ("vpd-augmented", "grid+ssd"),
}
VARIANTS = {**DATA_VARIANTS, **EYES_VARIANTS}
ITEMS = "validation_items.jsonl"
STAGES = ("questions", "traces", "augment", "exports", "teacher", "students", "report")


def vpagent(*args: str, env: dict[str, str] | None = None) -> None:
    """Run the CLI as a user would; stop the benchmark when a stage fails."""
    command = [str(VENV / "vpagent"), *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})


def questions(work: Path) -> None:
    if not (work / "questions.jsonl").is_file():
        vpagent("distill", "questions", str(COCO), "--out", str(work / "questions.jsonl"))


def traces(work: Path) -> None:
    done = work / "traces" / "items.jsonl"
    if not done.is_file() and COMMITTED_TRACES.is_file():  # start from the committed run
        done.parent.mkdir(parents=True, exist_ok=True)
        done.write_bytes(gzip.decompress(COMMITTED_TRACES.read_bytes()))
    finished = {row["item_id"] for row in jsonl(done)} if done.is_file() else set()
    if len(finished) == len(jsonl(work / "questions.jsonl")):
        return  # whole: spare the agent's start-up, and keep the card of the run that made it
    vpagent(
        "distill", "traces", str(work / "questions.jsonl"), "--out", str(work / "traces"),
        "--k", "5", "--workers", "2", env={"VPAGENT_LLM__PARALLEL": "2"},
    )  # fmt: skip
    write_trace_card(work)


def trace_card(work: Path) -> dict[str, Any]:
    """The full trace run: coverage per type, rejections by reason, traces per hour."""
    from datetime import datetime

    path = work / "traces" / "items.jsonl"
    header = json.loads(path.read_text().splitlines()[0])["vpagent_run"]
    records = list({r["item_id"]: r for r in jsonl(path)}.values())
    per_type: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        per_type[record["item"]["type"]][record["status"]] += 1
    started = datetime.fromisoformat(header["started"]).timestamp()
    hours = (path.stat().st_mtime - started) / 3600
    verified = sum(r["status"] == "verified" for r in records)
    winners = [r["attempts"][r["verified"]] for r in records if r["status"] == "verified"]
    return {
        "items": len(records),
        "verified": verified,
        "coverage": verified / len(records),
        "per_type": {
            kind: {
                "items": c.total(),
                "verified": c["verified"],
                "coverage": c["verified"] / c.total(),
            }
            for kind, c in sorted(per_type.items())
        },
        "rejections": dict(Counter(r["reason"] for r in records if r["reason"]).most_common()),
        "verified_by": {  # the attempt whose answer matched: sample 0 is the temperature-0 one
            "temperature_0_first_program": sum(
                not a["sample"] and not a["repair"] for a in winners
            ),
            "temperature_0_after_repair": sum(
                not a["sample"] and bool(a["repair"]) for a in winners
            ),
            "sampled_program": sum(bool(a["sample"]) for a in winners),
        },
        "verified_on_a_low_confidence_guess": sum(bool(a["unverified"]) for a in winners),
        "k": header["options"]["k"],
        "runtime": header["runtime"],
        "wall_hours": hours,
        "traces_per_hour": len(records) / hours,
        "seconds_per_item_median": statistics.median(r["seconds"] for r in records),
    }


def card_markdown(card: dict[str, Any]) -> str:
    by = card["verified_by"]
    first, repaired = by["temperature_0_first_program"], by["temperature_0_after_repair"]
    sampled = by["sampled_program"]
    lines = [
        "# coco128 traced by the teacher (`bench_student_ablation.py --until traces`)",
        "",
        f"Machine: {cpu_model()}. {card['items']} questions, k = {card['k']}, 2 worker processes "
        f"x {card['runtime']['llm']['parallel']} LLM slots: {card['verified']} verified "
        f"({card['coverage']:.1%}) in "
        f"{card['wall_hours']:.2f} h, **{card['traces_per_hour']:.0f} questions per hour** "
        f"(median {card['seconds_per_item_median']:.1f} s per question, several in flight).",
        "",
        "| type | questions | verified | coverage |",
        "|---|---|---|---|",
        *(
            f"| {kind} | {c['items']} | {c['verified']} | {c['coverage']:.1%} |"
            for kind, c in card["per_type"].items()
        ),
        "",
        "Rejected, by reason: "
        + ", ".join(f"{reason} {n}" for reason, n in card["rejections"].items())
        + ".",
        "",
        f"Of the {card['verified']} verified items, {first + repaired} were verified by the "
        f"temperature-0 program ({first} at its first attempt, {repaired} after a run-time "
        f"repair) and {sampled} by a sampled one: k = {card['k']} adds "
        f"{sampled / card['items']:.1%} of the questions. "
        f"{card['verified_on_a_low_confidence_guess']} verified programs relied on a tool's "
        "low-confidence guess (marked in their steps).",
        "",
    ]
    return "\n".join(lines)


def write_trace_card(work: Path) -> None:
    """The card (JSON, markdown) and the run itself, compressed, under benchmarks/results/."""
    path = work / "traces" / "items.jsonl"
    COMMITTED_TRACES.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    card = trace_card(work)
    (RESULTS / "coco128-traces.json").write_text(json.dumps(card, indent=2) + "\n")
    (RESULTS / "coco128-traces.md").write_text(card_markdown(card))


def augment(work: Path) -> None:
    if not (work / "augmented" / "questions.jsonl").is_file():
        vpagent(
            "distill", "augment", str(COCO), "--questions", str(work / "questions.jsonl"),
            "--out", str(work / "augmented"), "--crops", "2",
        )  # fmt: skip


def exports(work: Path) -> None:
    labels = ["--labels", str(work / "questions.jsonl")]
    augmented = ["--labels", str(work / "augmented" / "questions.jsonl")]
    plans = {
        "labels": (work / "no-traces", labels),
        "vpd": (work / "traces", labels),
        "vpd-augmented": (work / "traces", labels + augmented),
    }
    for name, (source, extra) in plans.items():
        if not (work / "exports" / name / "card.json").is_file():
            vpagent("distill", "export", str(source), "--out", str(work / "exports" / name), *extra)
    reported = {row["id"] for row in jsonl(validation_items(work))}
    for name in plans:  # the extra families add items on the same validation photos
        if not reported <= {row["id"] for row in jsonl(work / "exports" / name / ITEMS)}:
            sys.exit(f"export {name} lacks validation items of the labels export: another split")


def validation_items(work: Path) -> Path:
    """The reported items: the labelled questions on the validation photos (all variants)."""
    return work / "exports" / "labels" / ITEMS


def teacher(work: Path) -> None:
    for name, dataset in (("validation", validation_items(work)), ("dev", DEV)):
        out = work / "teacher" / f"{name}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.is_file() and len({r["id"] for r in jsonl(out)}) == len(jsonl(dataset)):
            continue  # whole: spare the agent's start-up
        vpagent("eval", str(dataset), "--out", str(out), *(["--resume"] * out.is_file()))


def student_dir(work: Path, variant: str, steps: int, seed: int) -> Path:
    return work / "students" / f"{variant}-{steps}steps-seed{seed}"


def students(work: Path, seeds: list[int], max_steps: int, only: list[str]) -> None:
    """Every data variant for every seed first, then the eyes variants (same budget)."""
    for group in (DATA_VARIANTS, EYES_VARIANTS):
        for seed in seeds:
            for variant, (export, eyes) in group.items():
                if not only or variant in only:
                    train_and_evaluate(work, variant, export, eyes, seed, max_steps)


def train_and_evaluate(
    work: Path, variant: str, export: str, eyes: str, seed: int, max_steps: int
) -> None:
    folder = student_dir(work, variant, max_steps, seed)
    if not (folder / "vpagent_student.json").is_file():
        vpagent(
            "distill", "train", "--data", str(work / "exports" / export), "--eyes", eyes,
            "--out", str(folder), "--max-steps", str(max_steps), "--batch-size", "4",
            "--lr", "5e-4", "--seed", str(seed), "--save-steps", str(max_steps),
            *(["--resume"] * (folder / "checkpoints").is_dir()),
        )  # fmt: skip
    for name, dataset in (("validation", validation_items(work)), ("dev", DEV)):
        out = folder / "eval" / name
        if not (out / "report.json").is_file():
            vpagent(
                "distill", "eval", str(dataset), "--student", str(folder),
                "--teacher-results", str(work / "teacher" / f"{name}.jsonl"),
                "--out", str(out), "--json",
            )  # fmt: skip


# --- the report -------------------------------------------------------------------------


def jsonl(path: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if "vpagent_run" not in row]


def spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def by_type(rows: list[dict[str, Any]], score: str = "score") -> dict[str, float]:
    scores: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        scores[row["type"]].append(row[score])
    return {kind: statistics.fmean(values) for kind, values in sorted(scores.items())}


def majority_baseline(work: Path, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Each type's most common training answer (the labels export), scored on ``items``."""
    from vpagent.evaluation.datasets.items import EvalItem
    from vpagent.evaluation.evaluate import score_item

    train = jsonl(work / "exports" / "labels" / "train.jsonl")
    common = {
        kind: Counter(r["answer"] for r in train if r["type"] == kind).most_common(1)[0][0]
        for kind in {r["type"] for r in train}
    }
    rows = []
    for item in items:
        answers = [item["answer"], *item.get("accept", [])]
        parsed = EvalItem(id=item["id"], image=Path("x"), question="q", answers=answers)
        rows.append({"type": item["type"], "score": score_item(parsed, common.get(item["type"]))})
    return {
        "answers": dict(sorted(common.items())),
        "accuracy": statistics.fmean(r["score"] for r in rows),
        "per_type": by_type(rows),
    }


def student_rows(folder: Path, name: str) -> list[dict[str, Any]]:
    rows = jsonl(folder / "eval" / name / "items.jsonl")
    return [{"type": r["type"], **r["student"]} for r in rows]


def constant_share(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per type, the share of the student's most common answer (1.0: a constant)."""
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        answers[row["type"]][str(row["prediction"]).lower()] += 1
    return {
        kind: counts.most_common(1)[0][1] / sum(counts.values())
        for kind, counts in sorted(answers.items())
    }


def variant_summary(work: Path, variant: str, steps: int, seeds: list[int]) -> dict[str, Any]:
    summary: dict[str, Any] = {"steps": steps, "seeds": seeds}
    for name in ("validation", "dev"):
        runs = [student_rows(student_dir(work, variant, steps, seed), name) for seed in seeds]
        accuracy = [statistics.fmean(r["score"] for r in rows) for rows in runs]
        seconds = [statistics.fmean(r["seconds"] for r in rows) for rows in runs]
        per_type_runs = [by_type(rows) for rows in runs]
        shares = [constant_share(rows) for rows in runs]
        block = {
            "accuracy": statistics.fmean(accuracy),
            "accuracy_spread": spread(accuracy),
            "seconds_per_question": statistics.fmean(seconds),
            "per_type": {
                kind: spread([runs_type[kind] for runs_type in per_type_runs])
                for kind in per_type_runs[0]
            },
            "most_common_answer_share": {
                kind: statistics.fmean(share[kind] for share in shares) for kind in shares[0]
            },
        }
        if name == "validation":
            summary.update(block)
        else:
            summary["dev"] = block
    return summary


def item_scores(folder: Path, name: str) -> dict[str, float]:
    rows = jsonl(folder / "eval" / name / "items.jsonl")
    return {row["id"]: row["student"]["score"] for row in rows}


def against_grid(work: Path, variant: str, steps: int, seeds: list[int]) -> dict[str, Any]:
    """An eyes variant item by item against its export's grid student. An item counts for the
    side that got it right on more of the seeds (items, not seeds, are the unit of the exact
    McNemar test: the seeds answer the same items)."""
    from vpagent.evaluation.stats import mcnemar_p

    export = VARIANTS[variant][0]
    grid = next(name for name, plan in DATA_VARIANTS.items() if plan == (export, "grid"))
    result: dict[str, Any] = {"grid_variant": grid}
    for name in ("validation", "dev"):
        ours = [item_scores(student_dir(work, variant, steps, seed), name) for seed in seeds]
        theirs = [item_scores(student_dir(work, grid, steps, seed), name) for seed in seeds]
        if any(run.keys() != theirs[0].keys() for run in ours + theirs):
            sys.exit(f"{variant} and {grid} were not evaluated on the same {name} items")
        margins = [
            sum(run[item] for run in ours) - sum(run[item] for run in theirs) for item in theirs[0]
        ]
        only_eyes, only_grid = sum(m > 0 for m in margins), sum(m < 0 for m in margins)
        result[name] = {
            "only_eyes": only_eyes,
            "only_grid": only_grid,
            "p": mcnemar_p(only_eyes, only_grid),
        }
    return result


def input_cost(work: Path, eyes: Iterable[str]) -> dict[str, dict[str, float]]:
    """Per eyes, milliseconds to compute a validation photo's frozen inputs, nothing cached
    (the first photo loads the models and is not counted)."""
    import time

    from vpagent.images import load_image
    from vpagent.student.eyes import REGION_EYES, encoder_for
    from vpagent.student.regions import RegionDetector

    folder = validation_items(work).parent
    photos = sorted({folder / row["image"] for row in jsonl(validation_items(work))})
    pixels = [load_image(photo) for photo in photos]
    cost = {}
    for name in eyes:
        encoder = encoder_for(name)
        regions = RegionDetector() if name == REGION_EYES else None
        times = []
        for image in pixels:
            start = time.perf_counter()
            encoder.encode(image)
            if regions is not None:
                regions.detect(image)
            times.append((time.perf_counter() - start) * 1000)
        counted = times[1:]
        cost[name] = {
            "photos": len(counted),
            "median_ms": statistics.median(counted),
            "mean_ms": statistics.fmean(counted),
        }
    return cost


def teacher_summary(path: Path) -> dict[str, Any]:
    from vpagent.evaluation.stats import interval

    rows = jsonl(path)
    scores = [r["score"] for r in rows]
    low, high = interval(scores)
    return {
        "n": len(rows),
        "accuracy": statistics.fmean(scores),
        "interval_95": [low, high],
        "seconds_per_question": statistics.fmean(r["total_s"] for r in rows),
        "per_type": by_type(rows),
    }


def calibration(work: Path, variant: str, steps: int, seeds: list[int]) -> dict[str, Any]:
    """`distill calibrate` over the variant's seeds: chosen on half of the photos, reported on
    the rest (pooled, and seed by seed for the spread)."""
    from vpagent.distill.student.calibrate import calibrate, plot, read_runs

    folders = [student_dir(work, variant, steps, seed) / "eval" / "validation" for seed in seeds]
    result = calibrate(read_runs(folders), fraction=0.5, seed=0)
    plot(result, PLOT, title=f"student-then-program, {variant}: report half, seeds pooled")
    return {
        "variant": variant,
        "threshold": result.threshold,
        "reason": result.reason,
        "calibration_items": result.calibration_items,
        "report_items": result.report_items,
        "accuracy": result.chosen.accuracy,
        "accuracy_spread": spread([p.accuracy for p in result.chosen_per_run]),
        "seconds_per_question": result.chosen.seconds_per_question,
        "student_share": result.chosen.student_share,
        "teacher_on_report_half": {
            "accuracy": result.teacher.accuracy,
            "seconds_per_question": result.teacher.seconds_per_question,
        },
        "sweep_on_report_half": [p.model_dump() for p in result.report_sweep],
    }


def finished_seeds(work: Path, seeds: list[int], variants: Iterable[str], steps: int) -> list[int]:
    """The seeds whose students of every one of ``variants`` have both evaluations."""
    return [
        seed
        for seed in seeds
        if all(
            (student_dir(work, variant, steps, seed) / "eval" / name / "report.json").is_file()
            for variant in variants
            for name in ("validation", "dev")
        )
    ]


def longer_budgets(work: Path, seeds: list[int], max_steps: int) -> list[dict[str, Any]]:
    """Variants also trained for more steps (``--max-steps N --variants ...``), all seeds done."""
    trained = {  # (variant, steps) of every student folder, as student_dir names them
        (match["variant"], int(match["steps"]))
        for folder in (work / "students").iterdir()
        if (match := re.fullmatch(r"(?P<variant>.+)-(?P<steps>\d+)steps-seed\d+", folder.name))
    }
    return [
        {"variant": variant, **variant_summary(work, variant, steps, seeds)}
        for variant, steps in sorted(trained)
        if variant in VARIANTS
        and steps > max_steps
        and finished_seeds(work, seeds, [variant], steps) == seeds
    ]


def report(work: Path, seeds: list[int], max_steps: int) -> dict[str, Any]:
    seeds = finished_seeds(work, seeds, list(DATA_VARIANTS), max_steps)
    if not seeds:
        sys.exit("no seed has finished students of every data variant: run the students stage")
    reported = {  # an eyes variant only once it has every one of those seeds
        name: plan
        for name, plan in VARIANTS.items()
        if name in DATA_VARIANTS or finished_seeds(work, seeds, [name], max_steps) == seeds
    }
    items = jsonl(validation_items(work))
    card = json.loads((work / "exports" / "vpd-augmented" / "card.json").read_text())
    traced = list({r["item_id"]: r for r in jsonl(work / "traces" / "items.jsonl")}.values())
    variants = {
        name: {"export": export, "eyes": eyes, **variant_summary(work, name, max_steps, seeds)}
        for name, (export, eyes) in reported.items()
    }
    for name in variants.keys() & EYES_VARIANTS.keys():
        variants[name]["against_grid"] = against_grid(work, name, max_steps, seeds)
    best = max(variants, key=lambda name: variants[name]["accuracy"])
    result = {
        "machine": cpu_model(),
        "n_validation": len(items),
        "n_dev": len(jsonl(DEV)),
        "traced_items": len(traced),
        "verified_traces": sum(r["status"] == "verified" for r in traced),
        "trace_run": trace_card(work),
        "training": {"max_steps": max_steps, "batch_size": 4, "lr": 5e-4, "seeds": seeds},
        "export_card": {key: card.get(key) for key in ("records", "splits", "labels")},
        "teacher": teacher_summary(work / "teacher" / "validation.jsonl"),
        "teacher_dev": teacher_summary(work / "teacher" / "dev.jsonl"),
        "constant_answer_baseline": majority_baseline(work, items),
        "variants": variants,
        "best_variant": best,
        "student_then_program": calibration(work, best, max_steps, seeds),
        "longer_budgets": longer_budgets(work, seeds, max_steps),
        "input_cost_ms": input_cost(work, sorted({v["eyes"] for v in variants.values()})),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "student-ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "student-ablation.md").write_text(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    teacher, baseline = result["teacher"], result["constant_answer_baseline"]
    types = list(teacher["per_type"])
    lines = [
        "# Student ablation on coco128 (`benchmarks/bench_student_ablation.py`)",
        "",
        f"Machine: {result['machine']}. {result['n_validation']} validation items on photos "
        f"never trained on; {result['verified_traces']} of {result['traced_items']} questions "
        f"verified by the teacher. Each variant: {result['training']['max_steps']} steps x "
        f"batch 4, seeds {result['training']['seeds']}; mean (std) over seeds.",
        "",
        "| answerer | accuracy | dev | s/question | " + " | ".join(types) + " |",
        "|---|---|---|---|" + "---|" * len(types),
        f"| teacher (agent) | {teacher['accuracy']:.1%} | {result['teacher_dev']['accuracy']:.1%}"
        f" | {teacher['seconds_per_question']:.2f} | "
        + " | ".join(f"{teacher['per_type'][t]:.0%}" for t in types)
        + " |",
        f"| each type's commonest training answer | {baseline['accuracy']:.1%} | | | "
        + " | ".join(f"{baseline['per_type'].get(t, 0):.0%}" for t in types)
        + " |",
    ]
    for name, variant in result["variants"].items():
        cells = [
            f"{variant['per_type'][t]['mean']:.0%} "
            f"(most common answer {variant['most_common_answer_share'][t]:.0%})"
            for t in types
        ]
        lines.append(
            f"| student: {name} | {variant['accuracy']:.1%} "
            f"({variant['accuracy_spread']['std']:.1%}) | {variant['dev']['accuracy']:.1%} "
            f"({variant['dev']['accuracy_spread']['std']:.1%}) | "
            f"{variant['seconds_per_question']:.2f} | " + " | ".join(cells) + " |"
        )
    mode = result["student_then_program"]
    lines += [
        "",
        f"Teacher: {teacher['accuracy']:.1%} of {teacher['n']} (95% bootstrap "
        f"{teacher['interval_95'][0]:.1%} to {teacher['interval_95'][1]:.1%}).",
        "",
        *eyes_markdown(result),
        f"## student-then-program ({mode['variant']}), threshold {mode['threshold']:g}",
        "",
        f"Chosen on {mode['calibration_items']} items ({mode['reason']}); reported on the other "
        f"{mode['report_items']}: accuracy {mode['accuracy']:.1%} "
        f"(std {mode['accuracy_spread']['std']:.1%}) at {mode['seconds_per_question']:.2f} s "
        f"per question, the student answering {mode['student_share']:.0%}; the teacher there: "
        f"{mode['teacher_on_report_half']['accuracy']:.1%} at "
        f"{mode['teacher_on_report_half']['seconds_per_question']:.2f} s.",
        "",
        "| threshold | accuracy | s/question |",
        "|---|---|---|",
        *(
            f"| {p['threshold']:g} | {p['accuracy']:.1%} | {p['seconds_per_question']:.2f} |"
            for p in mode["sweep_on_report_half"]
        ),
        "",
    ]
    for longer in result["longer_budgets"]:
        lines += [
            f"## {longer['variant']} trained for {longer['steps']} steps (same seeds)",
            "",
            f"Validation {longer['accuracy']:.1%} (std {longer['accuracy_spread']['std']:.1%}), "
            f"dev {longer['dev']['accuracy']:.1%}; per type: "
            + ", ".join(
                f"{t} {longer['per_type'][t]['mean']:.0%} (most common answer "
                f"{longer['most_common_answer_share'][t]:.0%})"
                for t in types
            )
            + ".",
            "",
        ]
    return "\n".join(lines)


def eyes_markdown(result: dict[str, Any]) -> list[str]:
    """The eyes variants against the grid, item by item, and what their inputs cost."""
    cost = result["input_cost_ms"]
    lines = [
        "## The eyes, item by item against the grid",
        "",
        "Items these eyes got right on more seeds than the grid / the grid on more seeds than "
        "these eyes (same export and seeds; exact McNemar p over items), and the median "
        "milliseconds to compute one validation photo's frozen inputs, nothing cached.",
        "",
        "| variant | eyes | validation | vs grid, validation | vs grid, dev | inputs ms/photo |",
        "|---|---|---|---|---|---|",
    ]
    variants = result["variants"]
    compared = {v["against_grid"]["grid_variant"] for v in variants.values() if "against_grid" in v}
    for name, variant in variants.items():
        versus = variant.get("against_grid")
        if name not in compared and versus is None:
            continue
        cells = [
            f"{versus[split]['only_eyes']} / {versus[split]['only_grid']} "
            f"(p {versus[split]['p']:.2g})"
            if versus
            else ""
            for split in ("validation", "dev")
        ]
        lines.append(
            f"| {name} | {variant['eyes']} | {variant['accuracy']:.1%} | "
            + " | ".join(cells)
            + f" | {cost[variant['eyes']]['median_ms']:.0f} |"
        )
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT.parent / "runs" / "student-ablation")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-steps", type=int, default=80)
    parser.add_argument("--until", choices=STAGES, default="report")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=[],
        help="train only these (default: all); the report reads every step count on disk",
    )  # fmt: skip
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    steps = {
        "questions": lambda: questions(args.work),
        "traces": lambda: traces(args.work),
        "augment": lambda: augment(args.work),
        "exports": lambda: exports(args.work),
        "teacher": lambda: teacher(args.work),
        "students": lambda: students(args.work, args.seeds, args.max_steps, args.variants),
        "report": lambda: print(markdown(report(args.work, args.seeds, args.max_steps))),
    }
    for stage in STAGES[: STAGES.index(args.until) + 1]:
        print(f"== {stage}", flush=True)
        steps[stage]()


if __name__ == "__main__":
    main()
