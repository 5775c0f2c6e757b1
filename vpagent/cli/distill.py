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


@distill_app.command("scene-text")
def scene_text_command(
    export: Annotated[Path, typer.Argument(help="An export folder (`distill export`).")],
) -> None:
    """Write the offline pack's scene text of each record's photo (objects with place, size
    and colour, their counts, classifier labels, OCR) into the records' ``scene`` field, so a
    student trained elsewhere can read the objects the scene eyes read."""
    from rich.console import Console

    from vpagent.distill.export import add_scene_text
    from vpagent.student.base import StudentError
    from vpagent.student.eyes import SCENE_EYES, require_models
    from vpagent.student.scene_text import SceneText, default_cache_dir

    if not (export / "train.jsonl").is_file():
        raise fail(f"{export} is not an export folder (no train.jsonl)")
    try:
        require_models(SCENE_EYES)
        scene = SceneText(SCENE_EYES, cache_dir=default_cache_dir())
        written = add_scene_text(export, scene.describe)
    except (StudentError, OSError, ValueError) as error:
        raise fail(str(error)) from None
    Console().print(f"scene text written into {written} records of {export}", highlight=False)


for commands in (distill_data.COMMANDS, student.COMMANDS):
    for name, command in commands.items():
        distill_app.command(name)(command)
