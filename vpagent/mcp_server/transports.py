"""Running the MCP server: over stdio (desktop and IDE clients start it as a child process) or
streamable HTTP on 127.0.0.1 (``/mcp``)."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

import anyio
import uvicorn
from mcp.server.stdio import stdio_server

from vpagent.http.server import drain_seconds
from vpagent.mcp_server.server import McpFrontEnd

LOOPBACK = "127.0.0.1"


def protocol_stdout() -> TextIO:
    """A private handle on stdout for the protocol; file descriptor 1 then points at stderr.

    Over stdio, stdout carries JSON-RPC only: any stray print, from Python or from a native
    library (llama.cpp, ONNX Runtime), would break the client's parser. Call before the agent
    starts."""
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return protocol


def run_stdio(front: McpFrontEnd, protocol: TextIO) -> None:
    """Serve ``front`` on stdin and ``protocol`` until the client closes stdin."""

    async def serve() -> None:
        lowlevel = front.server._mcp_server  # FastMCP runs stdio on sys.stdout only
        async with stdio_server(stdout=anyio.wrap_file(protocol)) as (reading, writing):
            await lowlevel.run(reading, writing, lowlevel.create_initialization_options())

    try:
        anyio.run(serve)
    finally:
        front.close()


class _DrainingServer(uvicorn.Server):
    """Refuses new questions as soon as it is told to stop; lets those taken finish."""

    def __init__(self, config: uvicorn.Config, front: McpFrontEnd) -> None:
        super().__init__(config)
        self.front = front

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.front.admission.draining = True
        super().handle_exit(sig, frame)


def run_http(front: McpFrontEnd, port: int, request_timeout_s: float) -> None:
    """Serve ``front`` as streamable HTTP on 127.0.0.1:``port``/mcp until SIGTERM or Ctrl-C,
    then drain the questions in flight as ``vpagent serve`` does."""
    app = front.server.streamable_http_app()
    config = uvicorn.Config(
        app,
        host=LOOPBACK,
        port=port,
        timeout_graceful_shutdown=drain_seconds(request_timeout_s),
        log_level="warning",
    )
    try:
        _DrainingServer(config, front).run()
    finally:
        front.close()
