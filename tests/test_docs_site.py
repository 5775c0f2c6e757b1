"""The documentation stays true: the site builds strictly (a broken link fails it), the API
reference renders, and every `vpagent` command line the docs show parses with the real CLI."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from vpagent.cli.main import app

ROOT = Path(__file__).parents[1]
MKDOCS = [sys.executable, "-m", "mkdocs", "build", "--strict"]  # not --quiet: it hides warnings
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
FENCE = re.compile(r"```(?:console|bash|shell|sh)\n(.*?)```", re.DOTALL)


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [*MKDOCS, "-f", str(config), "--site-dir", str(site)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)


@pytest.mark.slow
def test_the_site_builds_strictly_with_the_api_reference(tmp_path: Path) -> None:
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    reference = tmp_path / "site" / "reference"
    assert "execute_command" in (reference / "image-api.html").read_text()
    assert (
        "def find" in (reference / "image-api.html").read_text()
        or "find(" in (reference / "image-api.html").read_text()
    )
    assert "build_agent" in (reference / "python.html").read_text()
    assert "create_app" in (reference / "http.html").read_text()
    assert "McpFrontEnd" in (reference / "mcp.html").read_text()


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    config = (ROOT / "mkdocs.yml").read_text().replace("paths: [.]", f"paths: [{ROOT}]")
    (tmp_path / "mkdocs.yml").write_text(config)
    with (tmp_path / "docs" / "agents.md").open("a") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "no-such-page.md" in done.stderr


def documented_commands() -> list[tuple[str, list[str]]]:
    """(page, arguments) for every ``$ vpagent ...`` line in the docs' console blocks."""
    found = []
    for page in PAGES:
        for block in FENCE.findall(page.read_text(encoding="utf-8")):
            for line in block.replace("\\\n", " ").splitlines():
                if line.startswith("$ vpagent "):
                    words = shlex.split(line[2:], comments=True)
                    found.append((page.name, words[1:]))
    return found


def _command(arguments: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the arguments name, as the CLI resolves it (``eval DATASET`` is
    ``eval run DATASET``), and the rest of them; a group where no subcommand matches."""
    command = typer.main.get_command(app)  # a click command (typer ships its own click)
    while hasattr(command, "commands") and arguments:
        context = command.context_class(command, info_name=command.name)
        try:
            _name, command, arguments = command.resolve_command(context, arguments)
        except Exception:  # click's UsageError: no such command
            break
    return command, arguments


def test_every_documented_command_and_option_exists() -> None:
    commands = documented_commands()
    assert len(commands) > 20  # the docs show many; a broken pattern would find none
    wrong = []
    for page, arguments in commands:
        command, rest = _command(arguments)
        if hasattr(command, "commands"):
            wrong.append(f"{page}: vpagent {' '.join(arguments)}: no such command")
            continue
        known = {
            name
            for parameter in command.params
            for name in (*parameter.opts, *getattr(parameter, "secondary_opts", ()))
        }
        for word in rest:
            option = word.split("=")[0].strip("[]|")  # "[--workers 2 | --ray]": alternatives
            if option.startswith("-") and option not in known:
                wrong.append(f"{page}: vpagent {' '.join(arguments)}: {command.name} has no "
                             f"{option}")  # fmt: skip
    assert not wrong, "\n".join(wrong)


def test_the_mcp_client_config_in_the_docs_parses_with_the_cli() -> None:
    page = (ROOT / "docs" / "agents.md").read_text()
    (snippet,) = re.findall(r"```json\n(.*?)```", page, re.DOTALL)
    server = json.loads(snippet)["mcpServers"]["vpagent"]
    assert server["command"].endswith("/.venv/bin/vpagent")
    command, rest = _command(server["args"])
    assert command.name == "mcp"
    context = command.make_context("mcp", list(rest))
    assert context.params["allow_dir"] == [Path("/Users/me/Pictures")]
    readme = (ROOT / "README.md").read_text()
    assert '"mcpServers"' in readme and "AskImageTool" in readme
