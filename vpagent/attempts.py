"""How a question's history travels: why an attempt failed, and the record of one attempt.

The lowest layer (no project imports), so the planner, the sandbox, the agent loop, traces,
eval results, distill, HTTP and anything calling :meth:`vpagent.agent.Agent.ask` share one
vocabulary (:class:`FailureReason`) and one record (:class:`Attempt`).
"""

from __future__ import annotations

import traceback as tracebacks
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

MAX_TRACEBACK_CHARS = 4000  # the end of a traceback: where it was raised
MAX_REPLY_CHARS = 500  # the LLM's last reply when planning failed


class FailureReason(StrEnum):
    """Why an attempt (or one tool call of it) gave no answer."""

    PLANNING = "planning"  # the LLM gave no usable program
    REJECTED = "rejected"  # the program failed the static check; nothing ran
    TIMEOUT = "timeout"  # ran past its CPU or wall-clock limit and was killed
    MEMORY = "memory"  # ran out of its memory limit
    RUNTIME = "runtime"  # raised, or returned something that is not an answer
    ANSWER_FORM = "answer_form"  # its answer (or every answer its source can give) does not fit
    # the kind the question asks for: yes/no for "what ...?", a number for "what animal?"
    TOOL_ERROR = "tool_error"  # a vision tool failed on a call the program made
    CANNOT_ANSWER = "cannot_answer"  # a tool said it cannot answer this: no new program helps
    CRASHED = "crashed"  # the sandbox worker died without reporting
    INPUT = "input"  # the image or question could not be read
    WORKER_ERROR = "worker_error"  # an unexpected exception outside the sandbox (a bug)
    STUDENT = "student"  # the distilled student gave no answer
    DEADLINE = "deadline"  # the question's time budget (agent.deadline_s) allowed no further round

    @classmethod
    def _missing_(cls, value: object) -> FailureReason | None:
        """Names older traces used: a step's ``tool_failed`` is a tool error."""
        return cls.TOOL_ERROR if value == "tool_failed" else None


AttemptKind = Literal["program", "fallback", "student"]


def bounded_traceback(error: BaseException, limit: int = MAX_TRACEBACK_CHARS) -> str:
    """``error``'s formatted traceback, cut to its last ``limit`` characters."""
    text = "".join(tracebacks.format_exception(error)).rstrip()
    return text if len(text) <= limit else "..." + text[-limit:]


def describe_error(error: BaseException) -> str:
    """``Type: message``, the one-line form of an exception."""
    return f"{type(error).__name__}: {error}"


class ToolCall(BaseModel):
    """One tool call a program made, as the host saw it (a trace's Step adds what to draw)."""

    index: int
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    error_kind: FailureReason | None = Field(
        None,
        description="cannot_answer: the tool said it cannot answer this (no new program "
        "helps); tool_error: any other failure.",
    )
    traceback: str | None = Field(None, description="Where the tool raised (bounded).")
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


class Attempt(BaseModel):
    """One attempt at a question, in the order they were made: a program (or a planning that
    gave none), the fallback answer when no program succeeded, or the student's answer."""

    kind: AttemptKind = "program"
    sample: int = Field(0, description="0: the temperature-0 program; >0: sampled programs.")
    repair: int = Field(0, description="0: as planned; n: after n run-time repairs.")
    program: str | None = None
    answer: str | None = None
    reason: FailureReason | None = Field(None, description="Why it gave no answer; None: it did.")
    message: str | None = Field(None, description="What went wrong, as the planner was told.")
    line: int | None = Field(None, description="The program line the error was raised at.")
    traceback: str | None = Field(None, description="Where it was raised (bounded).")
    reply: str | None = Field(None, description="The LLM's last reply when planning failed.")
    steps: list[ToolCall] = Field(default_factory=list, description="The tool calls.")
    unverified: list[str] = Field(
        default_factory=list, description="Steps whose result was a tool's low-confidence guess."
    )
    plan_s: float = 0.0
    execute_s: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _older_names(cls, data: Any) -> Any:
        """Records written before this model named the reason ``error_kind`` and the message
        ``error``."""
        if isinstance(data, dict) and ("error_kind" in data or "error" in data):
            data = dict(data)
            data.setdefault("reason", data.pop("error_kind", None))
            data.setdefault("message", data.pop("error", None))
        return data

    @property
    def ok(self) -> bool:
        """It answered, without a failure."""
        return self.reason is None and self.answer is not None
