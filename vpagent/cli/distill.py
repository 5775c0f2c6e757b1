"""``vpagent distill ...``: one subcommand per distillation stage (traces and the rest in
``distill_data``, train and eval in ``student``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpagent.cli import distill_data, student
from vpagent.cli.common import fail

distill_app = typer.Typer(
    help="Distillation: labelled questions -> verified program traces -> SFT data -> student.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@distill_app.command("questions")
def questions_command(
    annotations: Annotated[Path, typer.Argument(help="COCO-format instance annotation JSON.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="JSONL file to write.")],
    images: Annotated[
        Path | None,
        typer.Option(help="Images folder (default: images/ next to the file, or its folder)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed writes the same file.")] = 0,
    per_image: Annotated[int, typer.Option(help="At most N questions per image.")] = 8,
    types: Annotated[
        list[str] | None,
        typer.Option("--types", help="A question family (repeatable); default: all six."),
    ] = None,
) -> None:
    """Labelled GQA-style questions whose answers come from the annotations."""
    from rich.console import Console
    from rich.table import Table

    from vpagent.distill.coco import CocoError
    from vpagent.distill.questions import FAMILIES, QuestionError, generate, write_jsonl

    try:
        rows, report = generate(
            annotations, out, images=images, seed=seed, per_image=per_image,
            types=types or FAMILIES,
        )  # fmt: skip
        write_jsonl(rows, out)
    except (CocoError, QuestionError, OSError) as error:
        raise fail(str(error)) from None
    table = Table(title=f"{out}: {report.questions} questions from {report.images_used} images")
    for column in ("type", "n", "most frequent answers"):
        table.add_column(column)
    for kind, n in report.per_type.items():
        common = ", ".join(f"{a} {c}" for a, c in report.answers[kind].items())
        table.add_row(kind, str(n), common)
    Console().print(table)
    if report.skipped:
        left_out = ", ".join(f"{reason}: {n}" for reason, n in report.skipped.items())
        Console(stderr=True).print(f"left out: {left_out}", highlight=False, markup=False)


for commands in (distill_data.COMMANDS, student.COMMANDS):
    for name, command in commands.items():
        distill_app.command(name)(command)
