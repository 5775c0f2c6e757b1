"""The typed outcome of one sandboxed run."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from vpagent.trace.records import Step


class ErrorKind(StrEnum):
    """Why a program produced no answer; each kind tells the planner what to change."""

    REJECTED = "rejected"  # failed the static check; nothing ran
    TIMEOUT = "timeout"  # ran past its CPU or wall-clock limit and was killed
    MEMORY = "memory"  # ran out of its memory limit
    RUNTIME = "runtime"  # raised an exception, or returned something that is not an answer
    TOOL_ERROR = "tool_error"  # a vision tool failed on a call the program made
    CRASHED = "crashed"  # the worker process died without reporting (a bug or an escape attempt)


class ExecutionResult(BaseModel):
    """Answer or error of one program run, with every tool call it made."""

    ok: bool
    answer: str | None = None
    error_kind: ErrorKind | None = None
    error: str | None = None
    line: int | None = Field(None, description="Line of the program where the error was raised.")
    stdout: str = ""
    steps: list[Step] = Field(default_factory=list)
    duration_s: float = 0.0

    def feedback(self) -> str:
        """A one-paragraph description of the failure that a planner LLM can act on."""
        if self.ok:
            return f"The program returned {self.answer!r}."
        where = f" at line {self.line}" if self.line else ""
        return f"The program failed ({self.error_kind}){where}: {self.error}"
