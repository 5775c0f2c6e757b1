"""Issue 32's ablation: today's best student (grid eyes) vs the scene-text eyes, epoch budgets.

Run (after `bench_student_ablation.py --until exports` has built the work folder):

    nice -n 10 .venv/bin/python benchmarks/bench_student_epochs.py [--work DIR] [--seeds 0 1 2]
        [--max-records 32] [--held-out-records 128] [--epochs 3] [--batch-size 8]
        [--threads 1] [--variants ...] [--until STAGE] [--name NAME] [--no-merge]

Stages, each skipped where its output is whole, so a killed run continues where it stopped
(per variant and seed; a training run killed mid-way resumes from its last epoch checkpoint):

1. ``teacher``   the teacher's answer to every validation item, read from the committed trace run
                 (benchmarks/results/coco128-traces.jsonl.gz: its temperature-0 program after
                 run-time repairs, as `vpagent eval` would answer; seconds = its plan + execute
                 time) into ``teacher/validation-traced.jsonl``, for `distill calibrate`.
2. ``students``  per seed, per variant (interleaved, so a comparison exists whenever it stops;
                 the scene text of the photos is computed on first use and cached, see
                 ``vpagent/student/scene_text.py``):
                 `vpagent distill train` on the vpd-augmented export's answer records (a seeded
                 subset of ``--max-records``, the same for every variant and seed), validation
                 loss of ``--held-out-records`` (whole training photos held out of training, never
                 the validation photos scored below) each epoch, ``--patience 1`` keeping the
                 best epoch, then `vpagent distill eval` on the 122 validation items (teacher from
                 stage 1) and on the dev set (no teacher).
3. ``report``    benchmarks/results/student-ablation-epochs.json and .md (``--name NAME-SUFFIX``:
                 another budget's files; ``--no-merge``: student-ablation.json left alone), the
                 loss curves (docs/student-epochs[SUFFIX].png), each variant's calibrated
                 confidence (`distill calibrate` over its seeds: AUROC, ECE per type), and the
                 new variants merged into benchmarks/results/student-ablation.json (the
                 80-step variants kept under ``variants_80_steps``; ``teacher`` and
                 ``student_then_program`` untouched).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from bench_student_ablation import (  # benchmarks/, beside this script
    COMMITTED_TRACES,
    DEV,
    RESULTS,
    ROOT,
    by_type,
    constant_share,
    jsonl,
    majority_baseline,
    spread,
    validation_items,
    vpagent,
)
from machine import cpu_model

VARIANTS = {  # name: (export, eyes); today's best first
    "vpd-augmented": ("vpd-augmented", "grid"),
    "vpd-augmented+scene": ("vpd-augmented", "scene"),
}
EYES_NAMES = {"grid": "grid eyes", "scene": "scene-text eyes"}
NAME = "student-ablation-epochs"  # the results files; the loss curves: docs/student-epochs.png
STAGES = ("teacher", "students", "report")


def traced_teacher(work: Path) -> Path:
    """The teacher's answers to the validation items from the trace run, written as a
    `vpagent eval --out` results file (header line, then one ``ItemResult`` per item with the
    temperature-0 program's attempts), so `distill eval --teacher-results` reads it as it would
    the output of `vpagent eval`. A file of an older form is written again."""
    from vpagent.distill.student.evaluate import read_teacher_results
    from vpagent.student.base import StudentError

    out = work / "teacher" / "validation-traced.jsonl"
    if out.is_file():
        try:
            read_teacher_results(out)
            return out
        except StudentError as error:
            print(f"writing the teacher's answers again: {error}", flush=True)
    write_traced_teacher(validation_items(work), COMMITTED_TRACES, out)
    return out


def write_traced_teacher(dataset: Path, traces: Path, out: Path) -> None:
    """``out``: the eval results of the trace run's temperature-0 programs (after run-time
    repairs) on the items of ``dataset``; seconds = their plan + execute time."""
    from vpagent.attempts import Attempt
    from vpagent.evaluation.datasets import read_dataset
    from vpagent.evaluation.evaluate import ItemResult, score_item
    from vpagent.evaluation.run_header import run_header
    from vpagent.pool.jsonl import write_atomic

    loaded = read_dataset(dataset)
    traced = {
        row["item_id"]: row
        for row in map(json.loads, gzip.decompress(traces.read_bytes()).splitlines())
        if "item_id" in row
    }
    lines = [run_header("eval", loaded.items, dataset=str(dataset), layout=loaded.layout).line()]
    for item in loaded.items:
        record = traced.get(item.id)
        if record is None:
            sys.exit(f"the trace run has no item {item.id}: another question set")
        attempts = [Attempt.model_validate(a) for a in record["attempts"] if not a["sample"]]
        last = attempts[-1] if attempts else None
        answer = last.answer if last else None
        result = ItemResult(
            id=item.id, type=item.type, pair=item.pair, question=item.question,
            prediction=answer, expected=item.answers, choices=item.choices,
            program=last.program if last else None, score=score_item(item, answer),
            error_kind=last.reason if last else None, error=last.message if last else None,
            answered_by="program" if answer is not None else None,
            verified=answer is not None and not last.unverified if last else False,
            plan_s=sum(a.plan_s for a in attempts), execute_s=sum(a.execute_s for a in attempts),
            total_s=sum(a.plan_s + a.execute_s for a in attempts), attempts=attempts,
        )  # fmt: skip
        lines.append(result.model_dump(mode="json"))
    write_atomic(out, "".join(json.dumps(line) + "\n" for line in lines))


def student_dir(work: Path, variant: str, seed: int, budget: str) -> Path:
    return work / "students-epochs" / f"{variant}-{budget}-seed{seed}"


def budget_name(args: argparse.Namespace) -> str:
    return f"{args.max_records}rec-{args.epochs}ep-{args.held_out_records}held"


def train_and_evaluate(work: Path, variant: str, seed: int, args: argparse.Namespace) -> None:
    export, eyes = VARIANTS[variant]
    folder = student_dir(work, variant, seed, budget_name(args))
    if not (folder / "vpagent_student.json").is_file():
        vpagent(
            "distill", "train", "--data", str(work / "exports" / export), "--eyes", eyes,
            "--out", str(folder), "--task", "answer", "--max-records", str(args.max_records),
            "--held-out-records", str(args.held_out_records),
            "--epochs", str(args.epochs), "--patience", "1", "--batch-size", str(args.batch_size),
            "--lr", str(args.lr), "--lora-layers", str(args.lora_layers),
            "--threads", str(args.threads), "--seed", str(seed),
            *(["--resume"] * (folder / "checkpoints").is_dir()),
        )  # fmt: skip
        (folder / "load.json").write_text(json.dumps({"load_average_1_5_15": os.getloadavg()}))
    for name, dataset in (("validation", validation_items(work)), ("dev", DEV)):
        out = folder / "eval" / name
        if (out / "report.json").is_file():
            continue
        teacher = (
            ["--teacher-results", str(traced_teacher(work))]
            if name == "validation"
            else ["--no-teacher"]
        )
        vpagent(
            "distill", "eval", str(dataset), "--student", str(folder), *teacher,
            "--out", str(out), "--max-new-tokens", "12", "--json",
        )  # fmt: skip


def load_range(work: Path, variants: list[str], seeds: list[int], budget: str) -> str:
    """The machine's 15-minute load average when each student finished training (low-high)."""
    loads = [
        json.loads(path.read_text())["load_average_1_5_15"][2]
        for variant in variants
        for seed in seeds
        if (path := student_dir(work, variant, seed, budget) / "load.json").is_file()
    ]
    return f"{min(loads):.0f}-{max(loads):.0f}" if loads else "not recorded"


def finished(work: Path, variant: str, seed: int, budget: str) -> bool:
    folder = student_dir(work, variant, seed, budget)
    return all((folder / "eval" / n / "report.json").is_file() for n in ("validation", "dev"))


def confidence(folders: list[Path]) -> dict[str, Any]:
    """`distill calibrate` over the seeds' validation runs: Platt scaling fitted on half the
    photos, AUROC and ECE (raw, calibrated) per type on the other half, the chosen threshold."""
    from vpagent.distill.student.calibrate import calibrate, read_runs

    result = calibrate(read_runs([f / "eval" / "validation" for f in folders]), seed=0)
    quality = result.confidence_quality
    return {
        "auroc": quality["all"].auroc,
        "ece": quality["all"].ece,
        "ece_raw": quality["all"].ece_raw,
        "per_type": {kind: q.model_dump() for kind, q in quality.items() if kind != "all"},
        "threshold_calibrated": result.threshold,
        "threshold_raw": result.raw_threshold,
        "threshold_reason": result.reason,
        "student_then_program_report_half": result.chosen.model_dump(),
        "teacher_traced_report_half": result.teacher.model_dump(),
        "scaling": result.scaling.model_dump(),
    }


def variant_summary(work: Path, variant: str, seeds: list[int], budget: str) -> dict[str, Any]:
    from vpagent.evaluation.stats import interval

    folders = [student_dir(work, variant, seed, budget) for seed in seeds]
    metrics = [json.loads((f / "train_metrics.json").read_text()) for f in folders]
    summary: dict[str, Any] = {
        "export": VARIANTS[variant][0],
        "eyes": VARIANTS[variant][1],
        "seeds": seeds,
        "steps": [m["steps"] for m in metrics],
        "epochs": [len(m["epochs"]) for m in metrics],
        "best_epoch": [m["best_epoch"] for m in metrics],
        "seconds_per_epoch": statistics.fmean(m["seconds_per_epoch"] for m in metrics),
        "tokens_per_second": statistics.fmean(m["tokens_per_second"] for m in metrics),
        "loss_curves": [m["epochs"] for m in metrics],
    }
    for name in ("validation", "dev"):
        runs = [
            [{"type": r["type"], **r["student"]} for r in jsonl(f / "eval" / name / "items.jsonl")]
            for f in folders
        ]
        accuracy = [statistics.fmean(r["score"] for r in rows) for rows in runs]
        pooled = [r["score"] for rows in runs for r in rows]
        per_type_runs = [by_type(rows) for rows in runs]
        shares = [constant_share(rows) for rows in runs]
        block = {
            "n": len(runs[0]),
            "accuracy": statistics.fmean(accuracy),
            "accuracy_spread": spread(accuracy),
            "interval_95_seeds_pooled": list(interval(pooled)),
            "seconds_per_question": statistics.fmean(r["seconds"] for rows in runs for r in rows),
            "per_type": {
                kind: spread([run[kind] for run in per_type_runs]) for kind in per_type_runs[0]
            },
            "most_common_answer_share": {
                kind: statistics.fmean(share[kind] for share in shares) for kind in shares[0]
            },
        }
        if name == "validation":
            summary.update(block)
        else:
            summary["dev"] = block
    summary["confidence"] = confidence(folders)
    return summary


def dev_baseline(work: Path) -> dict[str, Any]:
    """Each type's most common training answer, scored on the dev set (types the training set
    lacks score 0: a constant has no answer for them)."""
    return majority_baseline(work, jsonl(DEV))


def plot_curves(variants: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for colour, (name, variant) in enumerate(variants.items()):
        for seed, curve in zip(variant["seeds"], variant["loss_curves"], strict=True):
            xs = [e["epoch"] for e in curve]
            label = name if seed == variant["seeds"][0] else None
            axes[0].plot(
                xs, [e["train_loss"] for e in curve], "o-", color=f"C{colour}", label=label
            )
            axes[1].plot(
                xs, [e["validation_loss"] for e in curve], "s-", color=f"C{colour}", label=label
            )
    for ax, title in zip(
        axes, ("train loss (mean of the epoch)", "held-out photos loss"), strict=True
    ):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.legend()
    axes[0].set_ylabel("loss (one line per seed)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def report(work: Path, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    budget = budget_name(args)
    done = {
        variant: [seed for seed in seeds if finished(work, variant, seed, budget)]
        for variant in args.variants
    }
    common = [seed for seed in seeds if all(seed in found for found in done.values())]
    if not common:
        sys.exit(f"no seed has finished students of every variant asked for yet: {done}")
    items = jsonl(validation_items(work))
    variants = {name: variant_summary(work, name, common, budget) for name in args.variants}
    from vpagent.evaluation.stats import interval

    teacher_rows = jsonl(traced_teacher(work))
    teacher_scores = [r["score"] for r in teacher_rows]
    result = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores shared with other engineers' jobs "
        f"(15-minute load average {load_range(work, args.variants, common, budget)} as each "
        "student finished "
        "training); every job here ran under nice -n 10",
        "n_validation": len(items),
        "n_dev": len(jsonl(DEV)),
        "training": {
            "records": "answer records of the vpd-augmented export, a seeded subset",
            "max_records": args.max_records,
            "held_out_records": args.held_out_records,
            "max_epochs": args.epochs,
            "patience": 1,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "lora_layers": args.lora_layers,
            "seeds": common,
        },
        "teacher_traced": {
            "n": len(teacher_rows),
            "accuracy": statistics.fmean(teacher_scores),
            "interval_95": list(interval(teacher_scores)),
            "seconds_per_question": statistics.fmean(r["total_s"] for r in teacher_rows),
            "per_type": by_type(teacher_rows),
            "note": "the trace run's temperature-0 program (after repairs) per validation item",
        },
        "teacher_eval": teacher_eval(),
        "constant_answer_baseline": majority_baseline(work, items),
        "constant_answer_baseline_dev": dev_baseline(work),
        "variants": variants,
        "best_variant": max(variants, key=lambda name: variants[name]["accuracy"]),
    }
    suffix = "" if args.name == NAME else args.name.removeprefix(NAME)
    plot = ROOT / "docs" / f"student-epochs{suffix}.png"
    result["loss_curves_plot"] = str(plot.relative_to(ROOT))
    plot_curves(variants, plot)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(result))
    if args.merge:
        merge_into_ablation(result)
    return result


def teacher_eval() -> dict[str, Any]:
    """The teacher as `vpagent eval` ran it on both sets (bench_student_ablation.py's teacher
    stage, kept in student-ablation.json): the dev set has no trace run to read it from."""
    ablation = json.loads((RESULTS / "student-ablation.json").read_text())
    return {"validation": ablation["teacher"], "dev": ablation["teacher_dev"]}


def merge_into_ablation(result: dict[str, Any]) -> None:
    """The new variants into student-ablation.json (same keys; the 80-step ones kept aside)."""
    path = RESULTS / "student-ablation.json"
    ablation = json.loads(path.read_text())
    if "variants_80_steps" not in ablation:
        ablation["variants_80_steps"] = ablation["variants"]
        ablation["training_80_steps"] = ablation["training"]
        ablation["best_variant_80_steps"] = ablation["best_variant"]
    trimmed = {
        name: {k: v for k, v in variant.items() if k != "loss_curves"}
        for name, variant in result["variants"].items()
    }
    ablation.update(
        {
            "variants": trimmed,
            "best_variant": result["best_variant"],
            "training": result["training"],
            "constant_answer_baseline_dev": result["constant_answer_baseline_dev"],
            "teacher_traced": result["teacher_traced"],
        }
    )
    path.write_text(json.dumps(ablation, indent=2) + "\n")


def markdown(result: dict[str, Any]) -> str:
    base, dev_base = result["constant_answer_baseline"], result["constant_answer_baseline_dev"]
    teacher, t_eval = result["teacher_traced"], result["teacher_eval"]["validation"]
    types = list(base["per_type"])
    t = result["training"]
    compared = " vs ".join(EYES_NAMES[VARIANTS[name][1]] for name in result["variants"])
    lines = [
        f"# Student ablation in epochs: {compared} (`bench_student_epochs.py`)",
        "",
        f"Machine: {result['machine']}. Training: {t['max_records']} answer records "
        f"(vpd-augmented, one seeded subset), at most {t['max_epochs']} epochs with patience 1 on "
        f"the loss of {t['held_out_records']} records of training photos held out of training, "
        f"batch {t['batch_size']}, "
        f"lr {t['lr']}, LoRA on the top {t['lora_layers']} layers, seeds {t['seeds']}. "
        f"Accuracy: mean over seeds (std); interval: 95% bootstrap over the seeds' items pooled.",
        "",
        f"| answerer | validation (n={result['n_validation']}) | 95% interval | "
        f"dev (n={result['n_dev']}) | s/question | epochs run | s/epoch | tokens/s | AUROC | "
        "ECE raw -> calibrated | " + " | ".join(types) + " |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(types),
        f"| teacher (trace run) | {teacher['accuracy']:.1%} | {teacher['interval_95'][0]:.1%}-"
        f"{teacher['interval_95'][1]:.1%} | | {teacher['seconds_per_question']:.2f} | | | | | | "
        + " | ".join(f"{teacher['per_type'].get(k, 0):.0%}" for k in types)
        + " |",
        f"| teacher (`vpagent eval`, 2026-12-03) | {t_eval['accuracy']:.1%} | "
        f"{t_eval['interval_95'][0]:.1%}-{t_eval['interval_95'][1]:.1%} | "
        f"{result['teacher_eval']['dev']['accuracy']:.1%} | "
        f"{t_eval['seconds_per_question']:.2f} | | | | | | "
        + " | ".join(f"{t_eval['per_type'].get(k, 0):.0%}" for k in types)
        + " |",
        f"| each type's commonest training answer | {base['accuracy']:.1%} | | "
        f"{dev_base['accuracy']:.1%} | | | | | | | "
        + " | ".join(f"{base['per_type'].get(k, 0):.0%}" for k in types)
        + " |",
    ]
    for name, v in result["variants"].items():
        c = v["confidence"]
        auroc = f"{c['auroc']:.2f}" if c["auroc"] is not None else "-"
        cells = [
            f"{v['per_type'][k]['mean']:.0%} (commonest {v['most_common_answer_share'][k]:.0%})"
            if k in v["per_type"]
            else "-"
            for k in types
        ]
        lines.append(
            f"| student: {name} | {v['accuracy']:.1%} ({v['accuracy_spread']['std']:.1%}) | "
            f"{v['interval_95_seeds_pooled'][0]:.1%}-{v['interval_95_seeds_pooled'][1]:.1%} | "
            f"{v['dev']['accuracy']:.1%} ({v['dev']['accuracy_spread']['std']:.1%}) | "
            f"{v['seconds_per_question']:.2f} | {v['epochs']} | {v['seconds_per_epoch']:.0f} | "
            f"{v['tokens_per_second']:.0f} | "
            f"{auroc} | {c['ece_raw']:.2f} -> {c['ece']:.2f} | " + " | ".join(cells) + " |"
        )
    lines += ["", *dev_table(result), "", f"Loss curves: {result['loss_curves_plot']}.", ""]
    return "\n".join(lines)


def dev_table(result: dict[str, Any]) -> list[str]:
    """The dev set (photos never in coco128) per type: mean over seeds, commonest share."""
    base, teacher = result["constant_answer_baseline_dev"], result["teacher_eval"]["dev"]
    types = sorted(teacher["per_type"])
    lines = [
        f"Dev set (n={result['n_dev']}), per type: mean over seeds (commonest answer's share)",
        "",
        "| answerer | dev | " + " | ".join(types) + " |",
        "|---|---|" + "---|" * len(types),
        f"| teacher (`vpagent eval`) | {teacher['accuracy']:.1%} | "
        + " | ".join(f"{teacher['per_type'].get(k, 0):.0%}" for k in types)
        + " |",
        f"| each type's commonest training answer | {base['accuracy']:.1%} | "
        + " | ".join(f"{base['per_type'].get(k, 0):.0%}" for k in types)
        + " |",
    ]
    for name, v in result["variants"].items():
        dev = v["dev"]
        cells = [
            f"{dev['per_type'][k]['mean']:.0%} ({dev['most_common_answer_share'][k]:.0%})"
            if k in dev["per_type"]
            else "-"
            for k in types
        ]
        lines.append(
            f"| student: {name} | {dev['accuracy']:.1%} ({dev['accuracy_spread']['std']:.1%}) | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT.parent / "runs" / "student-ablation")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--max-records", type=int, default=32)
    parser.add_argument(
        "--held-out-records",
        type=int,
        default=128,
        help="early stopping's loss: whole training photos with at least N records",
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--lora-layers", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads per trainer")
    parser.add_argument("--until", choices=STAGES, default="report")
    parser.add_argument(
        "--name", default=NAME, help=f"results files; another budget's: {NAME}-SUFFIX"
    )
    parser.add_argument(
        "--merge", action=argparse.BooleanOptionalAction, default=True,
        help="put the variants into student-ablation.json (the budget the docs report)",
    )  # fmt: skip
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
        help="train only these (e.g. one per process, to run variants side by side)",
    )  # fmt: skip
    args = parser.parse_args()
    if not (args.work / "exports" / "vpd-augmented" / "card.json").is_file():
        sys.exit("no exports: run bench_student_ablation.py --until exports first")
    for stage in STAGES[: STAGES.index(args.until) + 1]:
        print(f"== {stage}", flush=True)
        if stage == "teacher":
            traced_teacher(args.work)
        elif stage == "students":
            for seed in args.seeds:
                for variant in args.variants:
                    train_and_evaluate(args.work, variant, seed, args)
        else:
            print(markdown(report(args.work, args.seeds, args)))


if __name__ == "__main__":
    main()
