"""The typed outcome of one sandboxed run."""

from __future__ import annotations

from pydantic import BaseModel, Field

from vpagent.attempts import FailureReason
from vpagent.trace.records import Step


class ExecutionResult(BaseModel):
    """Answer or error of one program run, with every tool call it made."""

    ok: bool
    answer: str | None = None
    error_kind: FailureReason | None = None
    error: str | None = None
    line: int | None = Field(None, description="Line of the program where the error was raised.")
    traceback: str | None = Field(
        None, description="Where a tool raised, when a tool's failure ended the run (bounded)."
    )
    stdout: str = ""
    steps: list[Step] = Field(default_factory=list)
    duration_s: float = 0.0

    def feedback(self) -> str:
        """A one-paragraph description of the failure that a planner LLM can act on."""
        if self.ok:
            return f"The program returned {self.answer!r}."
        where = f" at line {self.line}" if self.line else ""
        return f"The program failed ({self.error_kind}){where}: {self.error}"
