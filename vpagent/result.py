"""What answering a question returns (:class:`Result`), shared by the agent, the student and
every front end; and the check every question passes first."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from vpagent.attempts import Attempt, FailureReason
from vpagent.trace.records import Trace

MAX_QUESTION_CHARS = 1000
MAX_CHOICES = 26  # a multiple-choice question's options: A to Z at most


class Result(BaseModel):
    """What `Agent.ask` returns: the answer, or why there is none, with program and trace."""

    question: str
    choices: list[str] | None = Field(None, description="A multiple-choice question's options.")
    answer: str | None = None
    program: str | None = None
    trace: Trace | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    usage: dict[str, int] = Field(
        default_factory=dict, description="Planner tokens: prompt, cached, generated."
    )
    error: str | None = None
    error_kind: FailureReason | None = None
    programs_tried: int = 0
    verified: bool = False
    unverified_reason: str | None = None
    answered_by: Literal["program", "student"] = "program"
    student_confidence: float | None = None
    attempts: list[Attempt] = Field(
        default_factory=list,
        description="Every attempt at the question in order: each program tried (and each "
        "planning that gave none), then the fallback answer or the student's, if any.",
    )

    @property
    def ok(self) -> bool:
        return self.error is None


def validate_question(question: str) -> str:
    """The stripped question; a clear ValueError if it is empty or too long."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise ValueError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    return question.strip()


def validate_choices(choices: list[str] | None) -> list[str] | None:
    """The stripped options (None for none); a clear ValueError if one is empty or there are
    too many."""
    if not choices:
        return None
    if len(choices) > MAX_CHOICES:
        raise ValueError(f"a question takes at most {MAX_CHOICES} choices, not {len(choices)}")
    stripped = [choice.strip() for choice in choices]
    if not all(stripped):
        raise ValueError("a choice is empty")
    return stripped


class ResultSummary(BaseModel):
    """A Result as the front ends show it (CLI ``--json``, HTTP): everything but the trace,
    which is referred to by id."""

    answer: str | None
    program: str | None
    error: str | None
    error_kind: FailureReason | None
    timings: dict[str, float]
    verified: bool = False
    unverified_reason: str | None = None
    answered_by: Literal["program", "student"] = "program"
    student_confidence: float | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    trace_id: str | None = None

    @classmethod
    def of(cls, result: Result) -> ResultSummary:
        fields = set(cls.model_fields) - {"trace_id"}
        trace_id = result.trace.id if result.trace is not None else None
        return cls(**result.model_dump(include=fields), trace_id=trace_id)
