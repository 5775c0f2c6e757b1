"""Typed records of one run: each tool call a program made, in order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from vpagent.tools.types import StepArtifacts

StepErrorKind = Literal["cannot_answer", "tool_failed"]


class Step(BaseModel):
    """One tool call made by a program, as the host saw it."""

    index: int
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    error_kind: StepErrorKind | None = Field(
        None,
        description="cannot_answer: the tool said it cannot answer this (no new program helps); "
        "tool_failed: any other failure.",
    )
    duration_s: float = 0.0
    artifacts: StepArtifacts = Field(
        default_factory=StepArtifacts, description="Region, boxes and masks to draw for this step."
    )

    @property
    def ok(self) -> bool:
        return self.error is None


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
    error_kind: str | None = None
    error: str | None = None
    error_line: int | None = None
    stdout: str = ""
    timings: dict[str, float] = Field(default_factory=dict)
