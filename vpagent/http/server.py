"""Running the app under uvicorn with a graceful shutdown.

On SIGTERM or Ctrl-C the server stops accepting connections, refuses new questions on open
ones with 503 and ``Retry-After``, and lets the questions already taken (running or queued)
end: each is answered, or gets its 504 at its deadline. The drain lasts at most the request
deadline plus :data:`DRAIN_MARGIN_S` (the deadline is checked every
:data:`~vpagent.http.answering.POLL_SECONDS`, and the 504 must still be written), then the
server exits.
"""

from __future__ import annotations

import math
from typing import Any

import uvicorn
from fastapi import FastAPI

from vpagent.http.answering import POLL_SECONDS

DRAIN_MARGIN_S = 2.0  # beyond the deadline: its last check, a trace render, writing the response


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the app as draining as soon as it is told to stop."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.admission = app.state.admission

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.admission.draining = True
        super().handle_exit(sig, frame)


def drain_seconds(request_timeout_s: float) -> int:
    """How long a shutdown waits for the requests in flight (uvicorn takes whole seconds)."""
    return math.ceil(request_timeout_s + POLL_SECONDS + DRAIN_MARGIN_S)


def run_server(app: FastAPI, host: str, port: int, request_timeout_s: float) -> None:
    """Serve ``app`` on ``host:port`` until SIGTERM or Ctrl-C, then drain the requests in
    flight (each ends by its deadline of ``request_timeout_s``)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        timeout_graceful_shutdown=drain_seconds(request_timeout_s),
        log_level="info",
    )
    DrainingServer(config, app).run()
