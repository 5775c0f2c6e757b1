"""`vpagent mcp`: the agent as a Model Context Protocol server, over stdio or streamable HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vpagent.cli.common import ConfigOption, agent_or_fail, errors, fail, settings_or_fail

DEFAULT_PORT = 8765


def mcp_command(
    http: Annotated[
        bool,
        typer.Option("--http", help="Serve streamable HTTP on 127.0.0.1 (default: stdio)."),
    ] = False,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port for --http; the endpoint is /mcp.")
    ] = DEFAULT_PORT,
    allow_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--allow-dir",
            help="A folder whose images clients may name by path (repeatable; default none: "
            "images come as base64 or data URLs only).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve vpagent to MCP clients (Claude Desktop, IDE agents, LangChain): the tools
    ask_image, run_program and describe_backends, and traces as vpagent://traces/{id}."""
    from vpagent.mcp_server.inputs import ImagePolicy
    from vpagent.mcp_server.server import McpFrontEnd
    from vpagent.mcp_server.transports import protocol_stdout, run_http, run_stdio

    settings = settings_or_fail(config)
    try:
        policy = ImagePolicy.of(allow_dir or [], settings.server.max_upload_mb * 1024 * 1024)
    except ValueError as error:
        raise fail(str(error)) from None
    protocol = None if http else protocol_stdout()  # before anything can print
    with agent_or_fail(settings) as agent:
        front = McpFrontEnd(agent, policy, settings.server)
        if protocol is None:
            errors.print(f"MCP over streamable HTTP on http://127.0.0.1:{port}/mcp", markup=False)
            run_http(front, port, settings.server.request_timeout_s)
        else:
            run_stdio(front, protocol)
