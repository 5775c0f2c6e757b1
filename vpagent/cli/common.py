"""What every `vpagent` subcommand shares: consoles, options, exit codes, settings, the agent."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from vpagent.config import ConfigError, Settings, load_settings
from vpagent.logs import configure_logging

if TYPE_CHECKING:
    from vpagent.agent import Agent

console = Console()
errors = Console(stderr=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML settings file (else VPAGENT_CONFIG).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
LogLevelOption = Annotated[
    str,
    typer.Option(
        "--log-level", help="Log records at this level and above on stderr (DEBUG ... ERROR)."
    ),
]
LogJsonOption = Annotated[
    bool,
    typer.Option("--log-json", help="Log one JSON object per line, with the request or item id."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Join this Ray cluster (implies --ray; default: ray.address). Without it, --ray "
        "starts a private Ray on loopback.",
    ),
]

EXIT_PROGRAM_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print ``error: message`` on stderr; the exit to raise."""
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def logging_or_fail(level: str, json_lines: bool) -> None:
    """Configure the ``vpagent`` loggers (:mod:`vpagent.logs`), or exit 2 on a bad level."""
    try:
        configure_logging(level, json_lines=json_lines)
    except ValueError as error:
        raise fail(str(error)) from None


def settings_or_fail(config: Path | None) -> Settings:
    """The settings, or one line naming each bad key and exit code 2."""
    try:
        return load_settings(config)
    except ConfigError as error:
        raise fail(str(error)) from None


def agent_or_fail(settings: Settings) -> Agent:
    """A started agent (with a status line while it starts), or one line saying why not."""
    from vpagent.agent import build_agent

    try:
        with errors.status("starting the agent") as status:
            return build_agent(settings, on_event=lambda event: status.update(escape(str(event))))
    except Exception as error:  # missing model pack, unreachable server, bad LLM config
        raise fail(f"cannot start the agent: {error}") from None
