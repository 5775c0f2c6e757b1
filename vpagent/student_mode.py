"""A trained student as the Agent's first answerer (``agent.mode``).

- ``program`` (default): a program answers; with ``agent.student`` set the student is loaded
  too, so one question (HTTP ``mode``, the app's selector) may still ask for a student mode.
- ``student``: the student answers every question in one pass; no program is planned.
- ``student-then-program``: the student answers when its confidence (the geometric mean of
  its answer's token probabilities) reaches ``agent.student_threshold``; otherwise a program
  is planned.

The Result says which path answered (``answered_by``) and, for the student, its confidence.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.attempts import Attempt, FailureReason
from vpagent.config import ANSWER_MODES
from vpagent.events import AskingStudent, EventCallback, StudentUnsure, ignore
from vpagent.result import Result

STUDENT = "student"
PROGRAM = "program"
MODES = ANSWER_MODES  # who may answer, for the front ends


@dataclass
class StudentAnswer:
    answer: str | None
    confidence: float
    seconds: float
    text: str


class StudentAnswerer:
    """Loads a student checkpoint once and answers (image, question) pairs with it."""

    def __init__(
        self, folder: Path | str, *, mode: str = STUDENT, threshold: float = 0.5,
        max_new_tokens: int = 32,
    ) -> None:  # fmt: skip
        from vpagent.student.students import load_student

        if mode not in MODES:
            raise ValueError(f"agent.mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.folder = Path(folder)
        self.mode = mode
        self.threshold = threshold
        self.max_new_tokens = max_new_tokens
        self.student = load_student(self.folder)
        self._lock = threading.Lock()  # one generate at a time: the model is not re-entrant

    def answer(self, pixels: np.ndarray, question: str) -> StudentAnswer:
        """The student's short answer and its confidence."""
        from vpagent.student.records import parse_answer, user_prompt

        started = time.perf_counter()
        with self._lock:
            generation = self.student.generate(
                [pixels], [user_prompt(question, "answer")], max_new_tokens=self.max_new_tokens
            )[0]
        return StudentAnswer(
            answer=parse_answer(generation.text) or None,
            confidence=generation.confidence,
            seconds=time.perf_counter() - started,
            text=generation.text,
        )

    def first_answer(
        self,
        pixels: np.ndarray,
        question: str,
        notify: EventCallback | None = None,
        mode: str | None = None,
    ) -> Result | None:
        """A Result when the student answers (always in ``student`` mode), else None."""
        mode = mode or self.mode
        if mode == PROGRAM:
            return None
        notify = notify or ignore
        notify(AskingStudent())
        reply = self.answer(pixels, question)
        confident = reply.answer is not None and reply.confidence >= self.threshold
        if mode == STUDENT or confident:
            error = None if reply.answer else "the student gave no answer"
            reason = None if reply.answer else FailureReason.STUDENT
            attempt = Attempt(
                kind="student", answer=reply.answer, reason=reason, message=error,
                execute_s=reply.seconds,
            )  # fmt: skip
            return Result(
                question=question,
                answer=reply.answer,
                timings={"student_s": reply.seconds, "total_s": reply.seconds},
                error=error,
                error_kind=reason,
                attempts=[attempt],
                answered_by=STUDENT,
                student_confidence=reply.confidence,
                unverified_reason=(
                    f"answered by the distilled student in one pass (confidence "
                    f"{reply.confidence:.2f}); no program checked it"
                ),
            )
        notify(StudentUnsure(reply.confidence, self.threshold))
        return None


def build_student_answerer(agent_config: Any) -> StudentAnswerer | None:
    """The student of ``agent.student`` (answering first as ``agent.mode`` says), or None
    without one. It loads at start-up in every mode (a bad folder fails there); in ``program``
    mode it answers only questions that ask for a student mode."""
    mode = getattr(agent_config, "mode", PROGRAM)
    folder = getattr(agent_config, "student", None)
    if folder is None:
        if mode == PROGRAM:
            return None
        raise ValueError(f"agent.mode = {mode!r} needs agent.student = a trained student folder")
    return StudentAnswerer(folder, mode=mode, threshold=agent_config.student_threshold)


def with_student_options(settings: Any, mode: str | None, student: Path | None) -> Any:
    """``settings`` with ``agent.mode`` / ``agent.student`` replaced where given (validated)."""
    if mode is None and student is None:
        return settings
    agent = settings.agent.model_dump()
    agent.update({k: v for k, v in (("mode", mode), ("student", student)) if v is not None})
    if mode is None and student is not None and agent["mode"] == PROGRAM:
        agent["mode"] = STUDENT  # --student alone: let the student answer
    from pydantic import ValidationError

    try:
        return settings.model_copy(update={"agent": type(settings.agent)(**agent)})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(["agent", *(str(part) for part in first["loc"])])
        raise ValueError(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None


def student_first(
    answerer: StudentAnswerer | None,
    pixels: np.ndarray,
    question: str,
    notify: EventCallback,
    mode: str | None = None,
) -> Result | None:  # fmt: skip
    """What ``Agent.ask`` runs first: the student's Result, or None to plan a program.

    ``mode`` overrides the configured ``agent.mode`` for one question (HTTP API, app).
    """
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == PROGRAM or (answerer is None and mode is None):
        return None
    if answerer is None:
        raise ValueError(f"mode {mode!r} needs a student: set agent.student to a trained student")
    return answerer.first_answer(pixels, question, notify, mode=mode)
