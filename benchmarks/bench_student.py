"""Train the embedded student and measure it against the agent; writes results/student.md.

    python benchmarks/bench_student.py --export EXPORT            # a `vpagent distill export`
    python benchmarks/bench_student.py --questions QUESTIONS.jsonl  # labels only (see below)

With ``--questions`` (e.g. from ``vpagent distill questions`` on coco128) the script builds a
labels-only export: the photos are split by image (``--val-fraction``), training records are the
answer-only task with the labelled answer as target (no teacher rationales: running the teacher
over the whole set takes hours on this CPU). The student trains ``--max-steps`` steps (LoRA,
projector in full), then answers every validation item; the teacher (the agent) answers the
first ``--teacher-items`` of them, and both are compared on those.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import vpagent  # noqa: F401  (offline environment first)
from benchmarks.machine import cpu_model
from vpagent.student.records import SFTRecord

RESULTS = Path(__file__).parent / "results" / "student.md"


def labels_export(questions: Path, out: Path, val_fraction: float, seed: int) -> Path:
    """An export folder from labelled questions: answer-only records, split by image."""
    rows = [json.loads(line) for line in questions.read_text().splitlines() if line.strip()]
    images = sorted({row["image"] for row in rows})
    random.Random(seed).shuffle(images)
    validation = set(images[: max(1, round(val_fraction * len(images)))])
    (out / "images").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {"train": [], "validation": []}
    items = []
    for row in rows:
        source = (questions.parent / row["image"]).resolve()
        name = f"images/{source.name}"
        if not (out / name).exists():
            shutil.copyfile(source, out / name)
        split = "validation" if row["image"] in validation else "train"
        record = SFTRecord(
            id=f"{row['id']}-a", item_id=row["id"], image=name, question=row["question"],
            answer=row["answer"], type=row["type"], task="answer", target=row["answer"],
        )  # fmt: skip
        splits[split].append(record.model_dump_json())
        if split == "validation":
            items.append(
                {**{k: row[k] for k in ("id", "question", "answer", "type")}, "image": name}
            )
    for split, lines in splits.items():
        (out / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (out / "validation_items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--export", type=Path)
    source.add_argument("--questions", type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "bench-student")
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--teacher-items", type=int, default=6)
    parser.add_argument("--student-items", type=int, default=None, help="default: all")
    parser.add_argument("--reuse", action="store_true", help="keep the trained student")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from vpagent.agent import build_agent
    from vpagent.config import load_settings
    from vpagent.distill.student.evaluate import agent_teacher, compare, load_items, write_report
    from vpagent.distill.student.train import METRICS_FILE, TrainOptions, TrainResult, train
    from vpagent.student.students import load_student

    export = args.export or args.work / "export"
    if not args.export and not args.reuse:
        labels_export(args.questions, export, args.val_fraction, args.seed)
    ckpt = args.work / "student"
    if args.reuse:
        trained = TrainResult.model_validate_json((ckpt / METRICS_FILE).read_text())
    else:
        if ckpt.exists():
            shutil.rmtree(ckpt)
        trained = train(
            TrainOptions(data=export, out=ckpt, max_steps=args.max_steps,
                         batch_size=args.batch_size, lr=args.lr,
                         save_steps=max(10, args.max_steps // 2), seed=args.seed),
        )  # fmt: skip
    student = load_student(ckpt)
    items = load_items(export, args.student_items)
    student_report, rows = compare(
        student, items, teacher=None, dataset=str(export), student_name=str(ckpt)
    )
    write_report(student_report, rows, ckpt / "eval-student-only")
    started = time.perf_counter()
    with build_agent(load_settings()) as agent:
        teacher_load_s = time.perf_counter() - started
        paired, paired_rows = compare(
            student, items[: args.teacher_items], teacher=agent_teacher(agent),
            dataset=str(export), student_name=str(ckpt),
        )  # fmt: skip
    paths = write_report(paired, paired_rows, ckpt / "eval")
    write_markdown(args, export, trained, student_report, paired, teacher_load_s, paths)


def write_markdown(args, export, trained, alone, paired, teacher_load_s, paths) -> None:  # type: ignore[no-untyped-def]
    losses = trained.losses
    lines = [
        "# Embedded student vs the agent",
        "",
        f"Machine: {cpu_model()}, Python {platform.python_version()} (shared, loaded 2-core CPU).",
        f"Command: `python benchmarks/bench_student.py "
        f"{'--export ' + str(args.export) if args.export else '--questions ' + str(args.questions)}"
        f" --max-steps {args.max_steps} --batch-size {args.batch_size} --lr {args.lr} "
        f"--teacher-items {args.teacher_items}"
        f"{f' --student-items {args.student_items}' if args.student_items else ''}"
        f"{' --reuse' if args.reuse else ''}`",
        "",
        "## Training (SmolLM2-135M + LoRA r=16, projector trained in full, CPU fp32)",
        "",
        f"- data: {trained.data}",
        f"- {trained.steps} steps x {args.batch_size} records in {trained.seconds:.0f} s: "
        f"**{trained.samples_per_second:.2f} samples/s**",
        f"- loss {losses[0][1]:.3f} (step 1) -> {losses[-1][1]:.3f} (step {losses[-1][0]})",
        "",
        f"## Student alone on {alone.n} validation items (images never trained on)",
        "",
        "| type | n | student accuracy |",
        "|---|---|---|",
        *(
            f"| {t} | {n} | {alone.student_summary.per_type[t]:.1%} |"
            for t, n in alone.per_type_n.items()
        ),
        f"| **all** | {alone.n} | **{alone.student_summary.accuracy:.1%}** |",
        "",
        f"Seconds per question (median / p90): {alone.student_summary.seconds.median:.3f} / "
        f"{alone.student_summary.seconds.p90:.3f}",
        "",
        f"## Teacher (the agent, offline profile) vs student on the first {paired.n} items",
        "",
        "| | accuracy | s/question median | p90 |",
        "|---|---|---|---|",
    ]
    for name, summary in (("teacher", paired.teacher_summary), ("student", paired.student_summary)):
        if summary is not None:
            lines.append(
                f"| {name} | {summary.accuracy:.1%} | {summary.seconds.median:.2f} | "
                f"{summary.seconds.p90:.2f} |"
            )
    lines += [
        "",
        f"Agreement {paired.agreement:.1%}; the student is **{paired.speedup:.0f}x faster** per "
        f"question (medians). Agent start-up (not counted): {teacher_load_s:.0f} s.",
        f"Report: `{paths['json']}`, plot: `{paths['plot']}`.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
