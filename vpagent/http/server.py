"""Running the app under uvicorn with a graceful shutdown.

On SIGTERM or Ctrl-C the server stops accepting connections, refuses new questions on open
ones with 503 and ``Retry-After``, lets the questions already taken (running or queued)
finish within the request deadline, then exits.
"""

from __future__ import annotations

from typing import Any

import uvicorn
from fastapi import FastAPI


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the app as draining as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.admission = app.state.admission

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.admission.draining = True
        super().handle_exit(sig, frame)


def run_server(app: FastAPI, host: str, port: int, grace_s: float) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or Ctrl-C; drain for up to ``grace_s``."""
    config = uvicorn.Config(
        app, host=host, port=port, timeout_graceful_shutdown=int(grace_s), log_level="info"
    )
    DrainingServer(config, app).run()
