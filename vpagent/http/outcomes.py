"""What a refused, late or abandoned request gets, and the per-route request metrics.

Refused: 429 (busy) or 503 (draining), with ``Retry-After``. Past the deadline: 504 saying how
far the question got. A client that hung up gets nothing (its status is recorded as 499).
Routes under ``/v1/chat`` and ``/v1/models`` answer in OpenAI's error format.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vpagent.http.admission import Refused
from vpagent.http.answering import ClientGone, DeadlineExceeded
from vpagent.http.metrics import ServerMetrics

CLIENT_CLOSED = 499  # nginx's code for a client that closed the connection first
OPENAI_PREFIXES = ("/v1/chat", "/v1/models")
OPENAI_TYPES = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_exceeded",
                503: "server_unavailable", 504: "timeout"}  # fmt: skip


def error_body(path: str, status: int, message: str) -> dict[str, Any]:
    """``{"detail": ...}``, or OpenAI's ``{"error": {...}}`` on the OpenAI routes."""
    if path.startswith(OPENAI_PREFIXES):
        kind = OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"detail": message}


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The route's error body (:func:`error_body`) as a response."""
    return JSONResponse(error_body(request.url.path, status, message), status, headers=headers)


def add_outcome_handlers(app: FastAPI, metrics: ServerMetrics) -> None:
    """Map refusals, deadlines and disconnects to responses; count every request by route."""

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        metrics.refused.labels(error.reason).inc()
        retry = {"Retry-After": str(error.retry_after)}
        return error_response(request, error.status, error.detail, retry)

    @app.exception_handler(DeadlineExceeded)
    async def late(request: Request, error: DeadlineExceeded) -> Response:
        metrics.refused.labels("deadline").inc()
        return error_response(request, 504, str(error))

    @app.exception_handler(ClientGone)
    async def gone(_request: Request, _error: ClientGone) -> Response:
        metrics.refused.labels("client_closed").inc()
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(ClientDisconnect)
    async def gone_mid_upload(_request: Request, _error: ClientDisconnect) -> Response:
        """The client hung up while still sending its request: as above, not a server error."""
        metrics.refused.labels("client_closed").inc()
        return Response(status_code=CLIENT_CLOSED)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return error_response(request, error.status_code, str(error.detail), error.headers)

    app.add_middleware(RequestMetrics, metrics=metrics)


class RequestMetrics:
    """ASGI middleware counting requests by route template and status, with their latency.

    Plain ASGI, not ``BaseHTTPMiddleware``: the handlers must still see a client disconnect.
    """

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def tracking(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
