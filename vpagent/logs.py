"""Logging for the long-running commands (``vpagent serve``, ``vpagent eval``).

Every module that can fail logs to its own logger (``logging.getLogger(__name__)``); this
module only configures where the records go: plain lines, or with ``json_lines`` one JSON
object per line carrying the request or item being worked on (:func:`log_context`) and, for a
record with an exception, its traceback (bounded).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

MAX_LOGGED_TRACEBACK_CHARS = 8000
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"

_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "vpagent_log_context", default=()
)


@contextmanager
def log_context(**ids: str) -> Iterator[None]:
    """Within the block (in this thread or task), records carry ``ids`` (``item_id=...``,
    ``request_id=...``)."""
    token = _context.set(tuple({**dict(_context.get()), **ids}.items()))
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    """The ids :func:`log_context` set here."""
    return dict(_context.get())


class ContextFilter(logging.Filter):
    """Adds the current :func:`log_context` ids to each record (``record.context``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_context()
        record.ids = ids
        record.context = "".join(f" [{key}={value}]" for key, value in ids.items())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context ids, traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "ids", {}),
        }
        if record.exc_info:
            text = self.formatException(record.exc_info)
            entry["traceback"] = text[-MAX_LOGGED_TRACEBACK_CHARS:]
        return json.dumps(entry, default=str)


def configure_logging(
    level: str = "WARNING", *, json_lines: bool = False, stream: IO[str] | None = None
) -> logging.Handler:
    """Send the ``vpagent`` loggers' records at ``level`` and above to ``stream`` (stderr);
    replaces the handler an earlier call installed. The handler, for tests to remove."""
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"the log level must be one of {', '.join(LEVELS)}, not {level!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(PLAIN_FORMAT))
    handler.set_name("vpagent")
    root = logging.getLogger("vpagent")
    for old in [h for h in root.handlers if h.get_name() == "vpagent"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(name)
    return handler
