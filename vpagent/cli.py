"""The `vpagent` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import vpagent
from vpagent.config import ConfigError, Settings, load_settings
from vpagent.images import ImageError, load_image

app = typer.Typer(
    name="vpagent",
    help="Visual programming agent: programs over a vision API, run in a sandbox, with traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else VPAGENT_CONFIG).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]

EXIT_PROGRAM_FAILED = 1
EXIT_BAD_INPUT = 2


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as error:
        raise _fail(str(error)) from None


def _version(value: bool) -> None:
    if value:
        console.print(f"vpagent {vpagent.__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Visual programming agent toolkit."""


@app.command("run-program")
def run_program(
    program: Annotated[Path, typer.Argument(help="Python file defining execute_command(image).")],
    image: Annotated[Path, typer.Argument(help="Image file.")],
    json_output: JsonOption = False,
    trace_dir: Annotated[
        Path | None, typer.Option("--trace-dir", help="Save the trace as JSON and HTML here.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run a given program in the sandbox against the configured tools."""
    from vpagent.runner import ProgramRunner
    from vpagent.trace import save_trace
    from vpagent.trace.render import save_html

    settings = _settings(config)
    try:
        source = program.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _fail(f"cannot read the program {program}: {error}") from None
    try:
        pixels = load_image(image)
    except ImageError as error:
        raise _fail(str(error)) from None
    with ProgramRunner(settings, pool_size=0) as runner:
        result, trace = runner.run(source, pixels)
    trace.image.source = str(image)
    paths: dict[str, str] = {}
    directory = trace_dir or settings.trace_dir
    if directory is not None:
        paths["trace_path"] = str(save_trace(trace, directory))
        paths["trace_html"] = str(save_html(trace, pixels, directory))
    if json_output:
        payload: dict[str, Any] = {
            "ok": result.ok,
            "answer": result.answer,
            "error": result.error,
            "error_kind": result.error_kind.value if result.error_kind else None,
            "trace": trace.model_dump(mode="json"),
            **paths,
        }
        typer.echo(json.dumps(payload))
    elif result.ok:
        console.print(result.answer, highlight=False, markup=False)
    else:
        errors.print(escape(result.feedback()), style="red", highlight=False)
    if not json_output and paths:
        errors.print(f"trace: {paths['trace_html']}", highlight=False, markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_PROGRAM_FAILED)


@app.command()
def doctor(json_output: JsonOption = False, config: ConfigOption = None) -> None:
    """Show which backend serves each role, on which device, and whether it is a stand-in."""
    from vpagent.doctor import diagnose

    report = diagnose(_settings(config))
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
        return
    table = Table(title=f"vpagent {vpagent.__version__} · profile {report.profile}")
    for column in ("role", "backend", "model", "device", "kind", "status"):
        table.add_column(column)
    for role in report.roles:
        kind = "[yellow]stand-in[/]" if role.stand_in else "real"
        status = "[green]ok[/]" if role.available else f"[red]{escape(role.problem)}[/]"
        table.add_row(role.role, role.backend, role.model, role.device, kind, status)
    console.print(table)
    console.print(f"sandbox isolation: {', '.join(report.sandbox_isolation) or 'rlimits only'}")
    for role in report.roles:
        if role.note:
            console.print(f"{role.role}: {role.note}", style="dim", markup=False)
