"""``vpagent distill train`` and ``vpagent distill eval``: the student's commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from vpagent.cli.common import ConfigOption, agent_or_fail, fail, settings_or_fail


def train_command(
    data: Annotated[Path, typer.Option("--data", help="Export folder (or SFT records JSONL).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the trained student.")],
    student: Annotated[
        str | None,
        typer.Option(
            help="embedded (default), a model pack (smollm2-135m, qwen2.5-coder-0.5b), a causal "
            "LM or an image-text-to-text model (hub id or folder), or a trained student."
        ),
    ] = None,
    eyes: Annotated[
        str | None,
        typer.Option(
            help="A new embedded student's inputs: grid (81 feature-map tokens; default), "
            "grid+regions (plus 10 tokens of the offline detector's boxes), stages (several "
            "EfficientNet stages per token), grid+ssd (plus the SSD-MobileNet's maps per token), "
            "scene (no image tokens: the offline pack's objects, counts, labels and OCR as text "
            "in the prompt) or grid+scene (the grid and that text)."
        ),
    ] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimiser steps.")] = None,
    epochs: Annotated[float, typer.Option(help="Passes over the records.")] = 3.0,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after N epochs without a better held-out loss and keep the best "
            "epoch's checkpoint (needs --held-out-records)."
        ),
    ] = None,
    max_records: Annotated[
        int | None, typer.Option(help="Train on a seeded subset of N records (cheap epochs).")
    ] = None,
    held_out_records: Annotated[
        int | None,
        typer.Option(
            help="Hold whole training photos (at least N records) out of training; their loss "
            "each epoch drives --patience. The export's validation split, which `distill eval` "
            "scores, is never used to choose an epoch."
        ),
    ] = None,
    lora_layers: Annotated[
        int | None, typer.Option(help="LoRA on the language model's top N layers only.")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch's CPU threads.")] = None,
    scene_text: Annotated[
        bool,
        typer.Option(
            "--scene-text",
            help="An image-text-to-text student also reads the offline pack's scene text "
            "(objects, counts, labels, OCR) before each prompt, in training and answering.",
        ),
    ] = False,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 2e-4,
    batch_size: Annotated[int, typer.Option(help="Records per step and device.")] = 4,
    grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.")] = 1,
    lora: Annotated[bool, typer.Option("--lora/--full", help="LoRA or full fine-tuning.")] = True,
    lora_rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    save_steps: Annotated[int, typer.Option(help="Checkpoint every N steps.")] = 50,
    tasks: Annotated[
        list[str] | None,
        typer.Option("--task", help="rationale and/or answer (repeatable); default both (VPD)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Training processes on this machine (data-parallel; loopback only: file "
            "rendezvous, gloo/NCCL on lo, no name lookups).",
        ),
    ] = 1,
) -> None:
    """Fine-tune a student VLM on exported SFT records; checkpoints, --resume after a kill."""
    from pydantic import ValidationError
    from rich.console import Console

    from vpagent.distill.student.launch import launch
    from vpagent.distill.student.train import TrainOptions, train
    from vpagent.student.base import StudentError

    try:
        options = TrainOptions(
            data=data, out=out, student=student, eyes=eyes, max_steps=max_steps, epochs=epochs,
            lr=lr, batch_size=batch_size, grad_accum=grad_accum, lora=lora, lora_rank=lora_rank,
            lora_alpha=2 * lora_rank, save_steps=save_steps, tasks=tasks or ["rationale", "answer"],
            resume=resume, device=device, seed=seed, patience=patience, max_records=max_records,
            held_out_records=held_out_records, lora_layers=lora_layers,
            threads=threads, scene_text=scene_text,
        )  # fmt: skip
        bad = set(options.tasks) - {"rationale", "answer"}
        if bad:
            raise StudentError(f"unknown task(s) {', '.join(sorted(bad))}: rationale or answer")
        if nproc > 1 and "WORLD_SIZE" in os.environ:
            raise StudentError("--nproc starts its own processes: not under torchrun/accelerate")
        result = launch(options, nproc) if nproc > 1 else train(options)
    except ValidationError as error:
        first = error.errors()[0]
        raise fail(f"bad option {first['loc'][0]}: {first['msg']}") from None
    except (StudentError, OSError) as error:
        raise fail(str(error)) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun / accelerate: the first one reports
        return
    first = result.losses[0][1] if result.losses else float("nan")
    last = result.losses[-1][1] if result.losses else float("nan")
    resumed = f", resumed from step {result.resumed_from}" if result.resumed_from else ""
    processes = f" in {result.processes} processes" if result.processes > 1 else ""
    epochs = ""
    if result.epochs:
        best = f", best held-out loss at epoch {result.best_epoch}" if result.best_epoch else ""
        stopped = " (stopped early)" if result.stopped_early else ""
        epochs = (
            f"; {len(result.epochs)} epochs{stopped} of {result.seconds_per_epoch:.0f} s, "
            f"{result.tokens_per_second:.0f} tokens/s{best}"
        )
    Console().print(
        f"trained {result.steps} steps{resumed}{processes} on {result.data['records']} records "
        f"({result.samples_per_second:.2f} samples/s); loss {first:.3f} -> {last:.3f}{epochs}; "
        f"student saved to {result.out}",
        highlight=False,
    )


def eval_command(
    dataset: Annotated[
        Path, typer.Argument(help="Export folder (its validation_items.jsonl) or eval dataset.")
    ],
    student: Annotated[Path, typer.Option("--student", help="Trained student folder.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Report folder (default: STUDENT/eval).")
    ] = None,
    teacher: Annotated[
        bool, typer.Option("--teacher/--no-teacher", help="Run the agent as the teacher.")
    ] = True,
    teacher_results: Annotated[
        Path | None,
        typer.Option(help="Reuse the teacher's answers from a `vpagent eval --out` file."),
    ] = None,
    task: Annotated[str, typer.Option(help="answer (short) or rationale prompt.")] = "answer",
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Reply length limit.")] = 48,
    device: Annotated[str, typer.Option(help="The student's device: auto, cpu or cuda.")] = "auto",
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOption = None,
) -> None:
    """Teacher (the agent) vs student: accuracy per type, agreement, seconds per question."""
    from vpagent.distill.student.evaluate import (
        agent_teacher,
        compare,
        load_items,
        read_teacher_results,
        write_report,
    )
    from vpagent.student.base import StudentError
    from vpagent.student.students import load_student, on_device
    from vpagent.tools.errors import ModelUnavailable

    if task not in ("answer", "rationale"):
        raise fail(f"--task must be answer or rationale, not {task!r}")
    try:
        items = load_items(dataset, limit)
        model = on_device(load_student(student), device)
        stored = read_teacher_results(teacher_results) if teacher_results else None
    except (StudentError, ModelUnavailable, OSError) as error:
        raise fail(str(error)) from None
    agent = None
    if stored is None and teacher:
        agent = agent_or_fail(settings_or_fail(config))
    try:
        report, rows = compare(
            model, items, teacher=stored if stored is not None else (
                agent_teacher(agent) if agent is not None else None
            ),
            dataset=str(dataset), student_name=str(student), task=task,  # type: ignore[arg-type]
            max_new_tokens=max_new_tokens, progress=not json_output,
        )  # fmt: skip
    finally:
        if agent is not None:
            agent.close()
    paths = write_report(report, rows, out or student / "eval")
    if json_output:
        typer.echo(json.dumps(report.model_dump(mode="json")))
    else:
        print_report(report)
        typer.echo(f"report: {paths['json']}  plot: {paths['plot']}")


def print_report(report) -> None:  # type: ignore[no-untyped-def]
    """The comparison as a rich table: one row per question type, then the totals."""
    from rich.console import Console
    from rich.table import Table

    taught = report.teacher_summary is not None
    table = Table(title=f"teacher vs student on {report.n} items ({report.dataset})")
    table.add_column("type")
    table.add_column("n", justify="right")
    if taught:
        table.add_column("teacher", justify="right")
    table.add_column("student", justify="right")
    for kind, n in report.per_type_n.items():
        cells = [kind, str(n)]
        if taught:
            cells.append(f"{report.teacher_summary.per_type.get(kind, 0.0):.1%}")
        cells.append(f"{report.student_summary.per_type.get(kind, 0.0):.1%}")
        table.add_row(*cells)
    total = ["all", str(report.n)]
    if taught:
        total.append(f"{report.teacher_summary.accuracy:.1%}")
    total.append(f"{report.student_summary.accuracy:.1%}")
    table.add_row(*total, style="bold")
    seconds = ["s/question (median, p90)", ""]
    for summary in [report.teacher_summary] * taught + [report.student_summary]:
        seconds.append(f"{summary.seconds.median:.3f}, {summary.seconds.p90:.3f}")
    table.add_row(*seconds)
    console = Console()
    console.print(table)
    if taught:
        console.print(
            f"agreement {report.agreement:.1%}; student {report.speedup or 0:.1f}x faster "
            "(median seconds per question)",
            highlight=False,
        )


def calibrate_command(
    eval_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="`distill eval` report folders with a teacher side, all on the same items "
            "(several: students of several seeds, pooled)."
        ),
    ],
    fraction: Annotated[
        float, typer.Option(help="Share of the photos to choose the threshold on.")
    ] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the split by photo.")] = 0,
    plot_path: Annotated[
        Path | None,
        typer.Option("--plot", help="PNG of accuracy vs seconds (default: in the first folder)."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Choose `agent.student_threshold` for student-then-program on a calibration split."""
    from vpagent.distill.student.calibrate import CalibrationError, calibrate, plot, read_runs

    try:
        result = calibrate(read_runs(eval_dirs), fraction=fraction, seed=seed)
    except CalibrationError as error:
        raise fail(str(error)) from None
    target = plot_path or eval_dirs[0] / "calibration.png"
    plot(result, target)
    written = eval_dirs[0] / "calibration.json"
    written.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    if json_output:
        typer.echo(result.model_dump_json())
        return
    print_calibration(result)
    typer.echo(f"plot: {target}")


def print_calibration(result) -> None:  # type: ignore[no-untyped-def]
    """The sweep on the report half as a rich table, the chosen threshold in bold."""
    from rich.console import Console
    from rich.table import Table

    runs = f", {result.runs} runs pooled" if result.runs > 1 else ""
    table = Table(
        title=f"student-then-program on {result.report_items} report items "
        f"(threshold chosen on {result.calibration_items} others{runs})"
    )
    for column in ("threshold", "accuracy", "s/question", "student answers"):
        table.add_column(column, justify="right")
    rows = [("teacher alone", result.teacher), ("student alone", result.student)]
    rows += [(f"{p.threshold:g}", p) for p in result.report_sweep]
    for name, point in rows:
        style = "bold" if point.threshold == result.threshold and name[0].isdigit() else None
        table.add_row(
            name, f"{point.accuracy:.1%}", f"{point.seconds_per_question:.2f}",
            f"{point.student_share:.0%}", style=style,
        )  # fmt: skip
    Console().print(table)
    Console().print(
        f"agent.student_threshold = {result.raw_threshold:.3f}  (calibrated "
        f"{result.threshold:g}: {result.reason})",
        highlight=False,
    )
    quality = result.confidence_quality
    Console().print(
        "confidence on the report half: "
        + ", ".join(
            f"{kind} AUROC {q.auroc:.2f} ECE {q.ece_raw:.2f} -> {q.ece:.2f}"
            if q.auroc is not None
            else f"{kind} ECE {q.ece_raw:.2f} -> {q.ece:.2f}"
            for kind, q in quality.items()
        ),
        highlight=False,
    )
    if result.runs > 1:
        each = ", ".join(f"{p.accuracy:.1%}" for p in result.chosen_per_run)
        Console().print(f"at {result.threshold:g}, run by run: {each}", highlight=False)


COMMANDS = {
    "train": train_command,
    "eval": eval_command,
    "calibrate": calibrate_command,
}
