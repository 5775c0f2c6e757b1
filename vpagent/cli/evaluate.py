"""``vpagent eval DATASET`` runs the agent over a dataset; ``vpagent eval compare A B`` compares
two runs' results item by item."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.table import Table
from typer.core import TyperGroup

from vpagent.cli.common import (
    ConfigOption,
    JsonOption,
    agent_or_fail,
    console,
    errors,
    fail,
    settings_or_fail,
)


class _RunUnlessCommand(TyperGroup):
    """``vpagent eval DATASET ...`` means ``vpagent eval run DATASET ...``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands:
            args = ["run", *args]
        return super().resolve_command(ctx, args)


eval_app = typer.Typer(
    cls=_RunUnlessCommand,
    context_settings={"ignore_unknown_options": True},  # options may come before DATASET
    help="Evaluate on a dataset (vpagent eval DATASET), or compare two runs (eval compare A B).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _span(low: float, high: float) -> str:
    return f"{low:.1%} to {high:.1%}"


@eval_app.command("run")
def run_command(
    dataset: Annotated[
        Path,
        typer.Argument(
            help="JSONL, a Visual Sketchpad folder, parquet, GQA / VQAv2 / OK-VQA / A-OKVQA JSON."
        ),
    ],
    images: Annotated[
        Path | None, typer.Option(help="Images folder (GQA, VQAv2 / OK-VQA, A-OKVQA).")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N items.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write one JSON line per item here.")] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run the agent over a dataset; report accuracy per type and seconds per question."""
    from vpagent.evaluation.datasets import DatasetError, read_dataset
    from vpagent.evaluation.run import evaluate

    settings = settings_or_fail(config)
    try:
        loaded = read_dataset(dataset, images=images)
    except (DatasetError, OSError) as error:
        raise fail(str(error)) from None
    items = loaded.items[:limit]
    notes = [f"{loaded.layout}: {len(loaded.items)} items"]
    notes += [f"skipped {n} ({reason})" for reason, n in loaded.skipped.items()]
    if loaded.missing_images:
        notes.append(f"{loaded.missing_images} images not found (scored as input errors)")
    errors.print("; ".join(notes), highlight=False, markup=False)
    with agent_or_fail(settings) as agent:
        report, _ = evaluate(agent, items, out=out, progress=not json_output)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
        return
    table = Table(title=f"{dataset.name}: {report.n} questions")
    for column in ("type", "n", "accuracy", "95% interval"):
        table.add_column(column)
    for kind, score in report.per_type.items():
        table.add_row(kind, str(score.n), f"{score.accuracy:.1%}", _span(score.low, score.high))
    table.add_row(
        "[bold]all[/]",
        str(report.n),
        f"[bold]{report.accuracy:.1%}[/]",
        _span(report.low, report.high),
    )
    console.print(table)
    console.print(
        f"seconds per question: {report.seconds_per_question:.2f} "
        f"(plan {report.plan_seconds_per_question:.2f}, "
        f"execute {report.execute_seconds_per_question:.2f}); errors: {report.errors or 'none'}",
        highlight=False,
    )


@eval_app.command("compare")
def compare_command(
    first: Annotated[Path, typer.Argument(help="Results of run A (vpagent eval --out).")],
    second: Annotated[Path, typer.Argument(help="Results of run B.")],
    show: Annotated[bool, typer.Option(help="List the ids that flipped.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Per type: both accuracies, items right in one run only, and an exact McNemar p-value."""
    from vpagent.evaluation.compare import CompareError, compare_results, read_results

    try:
        comparison = compare_results(read_results(first), read_results(second))
    except CompareError as error:
        raise fail(str(error)) from None
    if json_output:
        typer.echo(comparison.model_dump_json(indent=2))
        return
    table = Table(title=f"A = {first.name}, B = {second.name}: {comparison.overall.n} shared items")
    for column in ("type", "n", "A", "B", "right in A only", "right in B only", "p (McNemar)"):
        table.add_column(column)
    rows: list[tuple[str, Any]] = [
        *comparison.per_type.items(),
        ("[bold]all[/]", comparison.overall),
    ]
    for kind, row in rows:
        table.add_row(
            kind, str(row.n), f"{row.accuracy_a:.1%}", f"{row.accuracy_b:.1%}",
            str(len(row.only_a)), str(len(row.only_b)), f"{row.p_value:.3g}",
        )  # fmt: skip
    console.print(table)
    if show:
        for label, ids in (("right in A only", comparison.overall.only_a),
                           ("right in B only", comparison.overall.only_b)):  # fmt: skip
            console.print(f"{label}: {', '.join(ids) or 'none'}", highlight=False)
    for label, ids in (
        ("only in A", comparison.missing_in_b),
        ("only in B", comparison.missing_in_a),
    ):
        if ids:
            errors.print(f"{len(ids)} ids {label} (not compared)", highlight=False)
