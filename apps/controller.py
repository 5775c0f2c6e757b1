"""The app's controller: one run at a time, progress from typed agent events, cancel, history."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from vpagent.agent import Agent
from vpagent.apps.inputs import image_problem, image_source
from vpagent.apps.marks_input import parse_marks
from vpagent.apps.one_at_a_time import Done, OneRunAtATime, RunCancelled
from vpagent.apps.render import (
    BUSY,
    DONE,
    PROBLEM,
    STOPPED,
    HistoryEntry,
    attempts_markdown,
    history_rows,
    now_text,
    planner_description,
    rationale_frame,
    short,
    step_gallery,
    step_rows,
    student_headline,
    student_row,
    timings_text,
)
from vpagent.config import Settings
from vpagent.events import EventCallback, RunningProgram
from vpagent.images import ImageError, load_image
from vpagent.result import Result, validate_question
from vpagent.sandbox.limits import MAX_SOURCE_CHARS
from vpagent.student_mode import STUDENT
from vpagent.trace.records import Trace
from vpagent.trace.render import render_html

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """The components a run updates (the right column, the program box, the history)."""

    status: Any
    answer: Any
    program: Any
    gallery: Any
    steps: Any
    rationale: Any
    download: Any
    history_state: Any
    history_table: Any
    planner_line: Any
    backends_table: Any

    def run_outputs(self) -> list[Any]:
        """What ``ask`` and ``run_program`` may update, in the order Gradio is told."""
        return [
            self.status,
            self.answer,
            self.program,
            self.gallery,
            self.steps,
            self.rationale,
            self.download,
            self.history_state,
            self.history_table,
        ]


class AppController:
    """What the page's buttons do; the agent runs in a worker thread, progress is streamed."""

    def __init__(self, agent: Agent, settings: Settings, outputs: Outputs) -> None:
        self.agent = agent
        self.settings = settings
        self.out = outputs
        self.runs = OneRunAtATime()  # on the shared agent
        self.files = Path(tempfile.mkdtemp(prefix="vpagent-ui-"))

    def close(self) -> None:
        shutil.rmtree(self.files, ignore_errors=True)

    def _message(self, text: str) -> dict[Any, Any]:
        return {self.out.status: text}

    def _cleared(self, text: str) -> dict[Any, Any]:
        return {
            self.out.status: text,
            self.out.answer: "",
            self.out.gallery: [],
            self.out.steps: [],
            self.out.rationale: "",
            self.out.download: None,
        }

    def _inputs(self, image: Any, question: str | None) -> tuple[np.ndarray, str]:
        """The loaded image and the cleaned question; ValueError with a message for people."""
        image = image_source(image)
        if image is None or (isinstance(image, str) and not image):
            raise ValueError("Please upload or paste an image, or pick one of the examples.")
        question = (question or "").strip()
        if not question:
            raise ValueError("Please type a question about the image.")
        try:
            validate_question(question)
        except ValueError as error:
            raise ValueError(f"The question is not usable: {error}.") from None
        try:
            pixels = load_image(image)
        except ImageError as error:
            raise ValueError(image_problem(error, image)) from None
        return pixels, question

    def _failure(self, error: BaseException | None) -> str:
        if isinstance(error, RunCancelled):
            return f"{STOPPED} Cancelled."
        if isinstance(error, ValueError):
            return f"{PROBLEM} {error}"
        kind = type(error).__name__ if error is not None else "unknown error"
        detail = short(str(error), 200)
        return f"{PROBLEM} Something went wrong ({kind}: {detail}). See the server log."

    def _add_history(
        self, history: list[HistoryEntry] | None, entry: HistoryEntry
    ) -> tuple[list[HistoryEntry], list[list[Any]]]:
        history = [*(history or []), entry]
        return history, history_rows(history)

    def _write_rationale(self, trace: Trace, pixels: np.ndarray) -> str:
        path = self.files / f"rationale-{trace.id}.html"
        path.write_text(render_html(trace, pixels), encoding="utf-8")
        return str(path)

    def _show(
        self,
        *,
        headline: str,
        answer: str,
        program: str | None,
        trace: Trace | None,
        pixels: np.ndarray,
    ) -> dict[Any, Any]:
        pictures = step_gallery(trace, pixels)
        update: dict[Any, Any] = {
            self.out.status: headline,
            self.out.answer: answer,
            self.out.gallery: gr.Gallery(value=pictures, selected_index=0 if pictures else None),
            self.out.steps: step_rows(trace),
            self.out.rationale: rationale_frame(trace, pixels),
            self.out.download: self._write_rationale(trace, pixels) if trace is not None else None,
        }
        if program is not None:
            update[self.out.program] = program
        return update

    def ask(
        self,
        image: Any,
        question: str | None,
        history: list[HistoryEntry] | None,
        mode: str | None = None,
        marks: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[dict[Any, Any]]:
        """Plan, run and explain: streams progress, then the answer, program and rationale.

        ``mode`` is who answers (``agent.mode`` for this question; None: the configured one);
        ``marks`` the points and boxes the person put on the photo (apps/marks_input.py).
        """
        try:
            pixels, question = self._inputs(image, question)
            given = parse_marks(marks)
        except ValueError as error:
            yield self._cleared(f"{PROBLEM} {error}")
            return
        yield {**self._cleared(f"{BUSY} **Starting…**"), self.out.program: ""}
        started = time.perf_counter()
        done: Done | None = None
        for progress, finished in self.runs.stream(
            _session(request),
            lambda on_event: self.agent.ask(
                pixels, question, marks=given, on_event=on_event, mode=mode or None
            ),
        ):
            if progress is not None:
                yield self._message(progress)
            done = finished
        assert done is not None
        seconds = time.perf_counter() - started
        if done.error is not None or not isinstance(done.value, Result):
            message = self._failure(done.error)
            history, rows = self._add_history(
                history,
                HistoryEntry(
                    now_text(), question, "", message.split(" ", 1)[-1], round(seconds, 1)
                ),
            )
            yield {
                **self._message(message),
                self.out.history_state: history,
                self.out.history_table: rows,
            }
            return
        result: Result = done.value
        tries = f"{result.programs_tried} program{'s' if result.programs_tried != 1 else ''}"
        if result.ok:
            headline = (
                f"{DONE} Answered in {seconds:.1f} s ({timings_text(result.timings)}; {tries})."
            )
            outcome = "answered"
        else:
            headline = f"{PROBLEM} No answer after {tries}. {short(result.error or '', 600)}"
            outcome = f"failed: {result.error_kind}"
        if result.answer is not None and not result.verified:
            reason = short(result.unverified_reason or "", 600)
            headline = f"{PROBLEM} Unverified answer ({tries}): {reason}"
            outcome = "unverified"
        if result.answered_by == STUDENT:
            headline = student_headline(result, seconds)
            outcome = "student" if result.answer is not None else "student: no answer"
        history_of_attempts = attempts_markdown(result.attempts)
        if history_of_attempts:  # the programs that failed before this answer, and why
            headline = f"{headline}\n\n{history_of_attempts}"
        history, rows = self._add_history(
            history,
            HistoryEntry(
                now_text(),
                question,
                result.answer or "",
                outcome,
                round(seconds, 1),
                result.program or "",
            ),
        )
        yield {
            **self._show(
                headline=headline,
                answer=result.answer or "",
                program=result.program or "",
                trace=result.trace,
                pixels=pixels,
            ),
            self.out.history_state: history,
            self.out.history_table: rows,
        }

    def run_program(
        self,
        image: Any,
        question: str | None,
        program: str | None,
        history: list[HistoryEntry] | None,
        request: gr.Request | None = None,
    ) -> Iterator[dict[Any, Any]]:
        """Run the (edited) program through the same sandbox; its trace replaces the old one."""
        program = program or ""
        if not program.strip():
            yield self._cleared(
                f"{PROBLEM} The program is empty. Ask a question first, or write one."
            )
            return
        if len(program) > MAX_SOURCE_CHARS:
            yield self._cleared(
                f"{PROBLEM} The program is longer than {MAX_SOURCE_CHARS} characters."
            )
            return
        asked = (question or "").strip()
        try:
            pixels, _ = self._inputs(image, asked or "(edited program)")
        except ValueError as error:
            yield self._cleared(f"{PROBLEM} {error}")
            return
        yield self._cleared(f"{BUSY} **Running the edited program…**")
        started = time.perf_counter()

        def work(on_event: EventCallback) -> Any:
            on_event(RunningProgram(1, edited=True))
            return self.agent.runner.run(program, pixels, question=asked or None, on_event=on_event)

        done: Done | None = None
        for progress, finished in self.runs.stream(_session(request), work):
            if progress is not None:
                yield self._message(progress)
            done = finished
        assert done is not None
        seconds = time.perf_counter() - started
        label = f"{asked} (edited program)" if asked else "(edited program)"
        if done.error is not None:
            message = self._failure(done.error)
            history, rows = self._add_history(
                history, HistoryEntry(now_text(), label, "", message, round(seconds, 1), program)
            )
            yield {
                **self._message(message),
                self.out.history_state: history,
                self.out.history_table: rows,
            }
            return
        execution, trace = done.value
        trace.timings["total_s"] = seconds
        if execution.ok:
            headline = f"{DONE} The edited program answered in {seconds:.1f} s."
            outcome = "answered (edited)"
        else:
            headline = f"{PROBLEM} The edited program failed: {short(execution.feedback(), 600)}"
            outcome = f"failed: {execution.error_kind}"
        history, rows = self._add_history(
            history,
            HistoryEntry(
                now_text(), label, execution.answer or "", outcome, round(seconds, 1), program
            ),
        )
        yield {
            **self._show(
                headline=headline,
                answer=execution.answer or "",
                program=None,
                trace=trace,
                pixels=pixels,
            ),
            self.out.history_state: history,
            self.out.history_table: rows,
        }

    def cancel(self, request: gr.Request | None = None) -> str:
        """Stop this session's run at its next step (an LLM call in flight finishes first)."""
        self.runs.cancel(_session(request))
        return f"{STOPPED} Cancelled."

    def backends(self) -> tuple[list[list[Any]], str]:
        """(one row per role, a line about the planner LLM) for the backends panel."""
        rows = [student_row(self.agent)] if self.agent.student is not None else []
        if not self.agent.program_path_started:  # student mode: nothing else runs yet
            return rows, (
                "**Planner LLM and tools:** not started (`agent.mode = student`); they start "
                "with the first question asked in a program mode."
            )
        try:
            infos = self.agent.runner.toolbox.describe()
        except Exception as error:  # a backend that cannot even be built
            log.exception("describing the backends failed")
            return rows, f"Could not describe the backends: {type(error).__name__}: {error}"
        for info in infos:
            rows.append(
                [
                    info.role,
                    info.backend,
                    info.model,
                    "stand-in" if info.stand_in else "real",
                    info.device,
                    info.note,
                ]
            )
        return rows, planner_description(self.agent, self.settings)

    def recall(self, history: list[HistoryEntry] | None, event: gr.SelectData) -> tuple[str, Any]:
        """Clicking a history row puts its question (and program) back in the editors."""
        row = event.index[0] if isinstance(event.index, list | tuple) else event.index
        if not history or not isinstance(row, int) or not 0 <= row < len(history):
            return gr.update(), gr.update()
        entry = history[row]
        question = entry.question.removesuffix(" (edited program)")
        return question, entry.program or gr.update()


def _session(request: gr.Request | None) -> str | None:
    return request.session_hash if request is not None else None
