"""The per-run limits a user sets (in config files or code), validated by pydantic.

Kept apart from :mod:`vpagent.sandbox.limits` so the worker process never imports pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class SandboxLimits(BaseModel):
    """Per-run resource limits; the defaults suit a CPU-only machine."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_seconds: float = Field(60.0, gt=0, description="Whole run, tool calls included.")
    cpu_seconds: int = Field(10, gt=0, description="CPU time of the program itself.")
    memory_mb: int = Field(512, ge=128, description="Address space of the worker process.")
    max_output_chars: int = Field(65_536, ge=0, description="Captured print() output.")
    max_tool_calls: int = Field(500, gt=0, description="Tool calls per run.")
    startup_seconds: float = Field(20.0, gt=0, description="Time a worker may take to start.")
