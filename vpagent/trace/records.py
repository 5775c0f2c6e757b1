"""Typed records of one run: each tool call a program made, in order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from vpagent.attempts import Attempt, FailureReason, ToolCall
from vpagent.tools.types import StepArtifacts


class Step(ToolCall):
    """One tool call made by a program, as the host saw it, with what to draw for it."""

    artifacts: StepArtifacts = Field(
        default_factory=StepArtifacts, description="Region, boxes and masks to draw for this step."
    )


class ImageInfo(BaseModel):
    """The image a run looked at: where it came from and its content hash."""

    sha256: str
    width: int
    height: int
    source: str | None = None


class Trace(BaseModel):
    """Everything needed to explain one run: question, program, steps, outcome, timings."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    question: str | None = None
    program: str
    image: ImageInfo
    steps: list[Step] = Field(default_factory=list)
    answer: str | None = None
    error_kind: FailureReason | None = None
    error: str | None = None
    error_line: int | None = None
    traceback: str | None = Field(None, description="Where a tool raised (bounded).")
    stdout: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
    attempts: list[Attempt] = Field(
        default_factory=list,
        description="Every attempt at the question, in order, this run the last program among "
        "them (set by the agent; empty for a program run on its own).",
    )
