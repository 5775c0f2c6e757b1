"""Every bound the sandbox enforces, in one place.

The constants are plain Python so the worker can import them cheaply: pydantic alone would
add ~130 ms to every worker's start-up. :class:`SandboxLimits` (the per-run, user-set limits,
a pydantic model) lives in :mod:`vpagent.sandbox.limits_model` and is importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpagent.sandbox.limits_model import SandboxLimits

# Static limits on the program text (checked before anything runs).
MAX_SOURCE_CHARS = 20_000
MAX_AST_NODES = 5_000
MAX_STRING_LITERAL_CHARS = 10_000
MAX_INT_LITERAL_DIGITS = 100

# Runtime caps applied inside the worker process.
MAX_INT_BITS = 64_000  # about 19k decimal digits; larger results raise OverflowError
MAX_SEQUENCE_ITEMS = 10_000_000  # 'a' * n, [0] * n beyond this raise MemoryError
MAX_ANSWER_CHARS = 10_000
MAX_ERROR_CHARS = 2_000  # an error message longer than this is cut
MAX_TOOL_ARGS_BYTES = 64 * 1024  # one encoded tool call; vision tools take names, not data
MAX_FRAME_BYTES = 32 * 1024 * 1024  # one message on the pipe, either direction
FRAME_SLACK_BYTES = 4_096  # msgpack framing and the small fields of a message
RECURSION_LIMIT = 200  # frames above the worker's own

# Process isolation.
SANDBOX_UID_BASE = 3_000_000_000  # as root, each worker runs as uid/gid BASE + its pid
EXIT_GRACE_SECONDS = 0.5  # a worker that closed its pipe gets this long to exit by itself


def max_worker_frame_bytes(max_output_chars: int) -> int:
    """The largest frame the host accepts from a worker: a tool call or the final report.

    UTF-8 needs at most 4 bytes per character; anything bigger is a protocol violation.
    """
    report = 4 * (MAX_ANSWER_CHARS + MAX_ERROR_CHARS + max_output_chars) + FRAME_SLACK_BYTES
    return min(MAX_FRAME_BYTES, max(MAX_TOOL_ARGS_BYTES + FRAME_SLACK_BYTES, report))


def __getattr__(name: str) -> Any:
    """``from vpagent.sandbox.limits import SandboxLimits`` without importing pydantic here."""
    if name == "SandboxLimits":
        from vpagent.sandbox.limits_model import SandboxLimits

        return SandboxLimits
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SandboxLimits", "max_worker_frame_bytes"]
