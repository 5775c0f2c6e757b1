"""Every bound the sandbox enforces, in one place."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Static limits on the program text (checked before anything runs).
MAX_SOURCE_CHARS = 20_000
MAX_AST_NODES = 5_000
MAX_STRING_LITERAL_CHARS = 10_000
MAX_INT_LITERAL_DIGITS = 100

# Runtime caps applied inside the worker process.
MAX_INT_BITS = 64_000  # about 19k decimal digits; larger results raise OverflowError
MAX_SEQUENCE_ITEMS = 10_000_000  # 'a' * n, [0] * n beyond this raise MemoryError
MAX_ANSWER_CHARS = 10_000
MAX_FRAME_BYTES = 32 * 1024 * 1024  # one message on the pipe, either direction
RECURSION_LIMIT = 200  # frames above the worker's own


class SandboxLimits(BaseModel):
    """Per-run resource limits; the defaults suit a CPU-only machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_seconds: float = Field(60.0, gt=0, description="Whole run, tool calls included.")
    cpu_seconds: int = Field(10, gt=0, description="CPU time of the program itself.")
    memory_mb: int = Field(512, ge=128, description="Address space of the worker process.")
    max_output_chars: int = Field(65_536, ge=0, description="Captured print() output.")
    max_tool_calls: int = Field(500, gt=0, description="Tool calls per run.")
    startup_seconds: float = Field(20.0, gt=0, description="Time a worker may take to start.")
