"""Progress of one question, as typed events: the agent sends them, the front ends show them.

``str(event)`` is the short plain message (CLI status lines, logs); :meth:`Event.describe` is the
wording for people (the app). Front ends never parse messages back apart: they read fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """Something the agent started doing."""

    def describe(self) -> str:
        """The event worded for people."""
        text = str(self)
        return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class Starting(Event):
    """Building the agent: a start-up step (loading models, the prompt prefix)."""

    detail: str

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True)
class AskingStudent(Event):
    def __str__(self) -> str:
        return "asking the student"


@dataclass(frozen=True)
class StudentUnsure(Event):
    confidence: float
    threshold: float

    def __str__(self) -> str:
        return (
            f"student unsure (confidence {self.confidence:.2f} < {self.threshold:.2f}): "
            "planning a program"
        )


@dataclass(frozen=True)
class Planning(Event):
    sample: int  # 0: the temperature-0 program; then sampled ones

    def __str__(self) -> str:
        return "planning" if self.sample == 0 else f"planning sample {self.sample + 1}"

    def describe(self) -> str:
        if self.sample == 0:
            return "Planning a program with the LLM"
        return f"Planning sample program {self.sample + 1}"


@dataclass(frozen=True)
class TokensWritten(Event):
    count: int

    def __str__(self) -> str:
        return f"planning: {self.count} tokens written"


@dataclass(frozen=True)
class RunningProgram(Event):
    number: int  # 1 for the first program of a sample, then its repairs
    edited: bool = False  # a program a person edited in the app

    def __str__(self) -> str:
        return "running edited program" if self.edited else f"running program {self.number}"

    def describe(self) -> str:
        if self.edited:
            return "Running the edited program in the sandbox"
        return f"Running program {self.number} in the sandbox"


@dataclass(frozen=True)
class ToolStep(Event):
    number: int
    tool: str

    def __str__(self) -> str:
        return f"step {self.number}: {self.tool}"


@dataclass(frozen=True)
class Repairing(Event):
    error_kind: str

    def __str__(self) -> str:
        return f"repairing: {self.error_kind}"

    def describe(self) -> str:
        return f"The program failed ({self.error_kind}); asking the LLM to repair it"


@dataclass(frozen=True)
class AnsweringWithoutProgram(Event):
    def __str__(self) -> str:
        return "answering without a program"


EventCallback = Callable[[Event], None]


class Cancelled(BaseException):
    """Raised by an event callback to stop a question at its next step: a client that hung up,
    a deadline. A BaseException, so no ``except Exception`` on the way swallows it; the sandbox
    worker of a running program is killed and the LLM stream is closed."""


def ignore(_event: Event) -> None:
    """An event callback that listens to nothing."""
