"""``vpagent eval DATASET`` runs the agent over a dataset; ``vpagent eval compare A B`` compares
two runs' results item by item."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from vpagent.cli.common import (
    EXIT_INTERRUPTED,
    ConfigOption,
    JsonOption,
    LogJsonOption,
    LogLevelOption,
    RayAddressOption,
    agent_or_fail,
    console,
    errors,
    fail,
    logging_or_fail,
    settings_or_fail,
)

if TYPE_CHECKING:
    from typer._click.core import Command, Context  # the click TyperGroup's signature names

    from vpagent.evaluation.evaluate import Report


class _RunUnlessCommand(TyperGroup):
    """``vpagent eval DATASET ...`` means ``vpagent eval run DATASET ...``."""

    def resolve_command(
        self, ctx: Context, args: list[str]
    ) -> tuple[str | None, Command | None, list[str]]:
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


class FormatName(StrEnum):
    """The official prediction formats (vpagent.evaluation.predictions)."""

    gqa = "gqa"
    vqa = "vqa"
    choice = "choice"


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
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Results file: a header line, then one JSON line per item as it ends."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out: skip the items it holds.")
    ] = False,
    retry_errors: Annotated[
        bool, typer.Option(help="With --resume: ask again items that failed with worker_error.")
    ] = False,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0: in this process).")] = 0,
    use_ray: Annotated[bool, typer.Option("--ray", help="Run the workers as Ray actors.")] = False,
    ray_address: RayAddressOption = None,
    predictions: Annotated[
        Path | None,
        typer.Option(help="Also write the answers in an official scorer's format (JSON)."),
    ] = None,
    predictions_format: Annotated[
        FormatName | None,
        typer.Option(help="Format of --predictions (default: from the layout)."),
    ] = None,
    json_output: JsonOption = False,
    config: ConfigOption = None,
    log_level: LogLevelOption = "WARNING",
    log_json: LogJsonOption = False,
) -> None:
    """Run the agent over a dataset; report accuracy per type and seconds per question.

    With --out the run is resumable: Ctrl-C or a crash loses only the items in flight, and
    --resume continues it. Each worker keeps llm.parallel questions in flight.
    """
    from vpagent.evaluation.datasets import DatasetError, read_dataset
    from vpagent.evaluation.evaluate import evaluate
    from vpagent.evaluation.predictions import PredictionsError, default_format, write_predictions
    from vpagent.evaluation.run_header import run_header
    from vpagent.pool.dataset_run import Backend, RunRefused
    from vpagent.pool.factory import SettingsAgentFactory
    from vpagent.pool.local import AgentBuildFailed, WorkerDied, WorkerFailed

    logging_or_fail(log_level, log_json)
    settings = settings_or_fail(config)
    if resume and out is None:
        raise fail("--resume needs --out (the results file to continue)")
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
    header = run_header(
        "eval", loaded.items, dataset=str(dataset), layout=loaded.layout, settings=settings
    )
    use_ray = use_ray or ray_address is not None
    backend = Backend(workers, use_ray, ray_address or settings.ray.address)
    factory = (
        SettingsAgentFactory(settings, workers=workers)
        if workers or use_ray
        else lambda: agent_or_fail(settings)
    )
    try:
        report, results = evaluate(
            items,
            factory,
            out=out,
            header=header,
            backend=backend,
            concurrency=settings.llm.parallel,
            resume=resume,
            retry_errors=retry_errors,
            progress=not json_output,
        )
    except KeyboardInterrupt:
        console.print(f"interrupted: finished items are in {out}; add --resume to continue")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (RunRefused, AgentBuildFailed, WorkerDied, WorkerFailed) as error:
        raise fail(str(error)) from None
    if predictions is not None:
        try:
            form = (
                predictions_format.value
                if predictions_format
                else default_format(loaded.layout, results)
            )
            write_predictions(predictions, results, form)
        except PredictionsError as error:
            raise fail(str(error)) from None
        errors.print(f"wrote {len(results)} {form} predictions to {predictions}", highlight=False)
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
        return
    _print_report(dataset.name, report)


def _print_report(name: str, report: Report) -> None:
    table = Table(title=f"{name}: {report.n} questions")
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
    if report.pairs is not None:
        pairs = report.pairs
        table.add_row(
            "pairs (both right)",
            str(pairs.n),
            f"{pairs.accuracy:.1%}",
            _span(pairs.low, pairs.high),
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
    if comparison.differences:
        errors.print(
            "the two runs differ in: " + "; ".join(comparison.differences), highlight=False
        )
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
