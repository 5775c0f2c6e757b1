"""The vpagent web app: ask a question about a photo, watch the program run, edit and re-run it.

``build_ui(agent)`` returns the Gradio Blocks; ``launch(settings)`` builds the agent and serves
the page on ``settings.server.host`` (127.0.0.1 unless configured otherwise), never with a
public share link.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import os
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from vpagent.agent import Agent
from vpagent.config import Settings
from vpagent.images import ImageError, load_image
from vpagent.result import Result, validate_question
from vpagent.student_mode import MODES, STUDENT
from vpagent.trace.records import Step, Trace
from vpagent.trace.render import draw_step, render_html

log = logging.getLogger(__name__)

TITLE = "vpagent — visual programming agent"
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_QUESTION = "What is in this image?"
MAX_PROGRAM_CHARS = 20_000
MAX_CELL_CHARS = 300
HISTORY_HEADERS = ["#", "time", "question", "answer", "outcome", "seconds"]
STEP_HEADERS = ["#", "tool", "arguments", "output", "ms"]
BACKEND_HEADERS = ["role", "backend", "model", "real or stand-in", "device", "note"]
MODE_LABELS = {
    "program": "Program (plan, run, explain)",
    "student": "Student (one pass, fast)",
    "student-then-program": "Student, then a program when it is unsure",
}
POLL_SECONDS = 0.25
# status marks that plain system fonts have (emoji fonts are often missing on servers)
DONE, PROBLEM, BUSY, STOPPED = "✔", "⚠", "⟳", "■"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")

UI_CSS = """
#status { min-height: 2.6em; }
#answer textarea { font-size: 1.25rem; font-weight: 600; }
.rationale-frame { width: 100%; height: 760px; border: 1px solid #e5e7eb; border-radius: 6px; }
"""


class RunCancelled(Exception):
    """Raised from the progress callback to stop a run the user cancelled."""


def image_source(value: Any) -> Any:
    """What the image input sent, unprocessed, as something ``load_image`` reads.

    The events run with ``preprocess=False``: gradio's own image preprocessing decodes the upload
    with PIL and fails on a corrupt file with a bare "Error" before the app can explain it.
    """
    if isinstance(value, dict):
        if value.get("path"):
            return str(value["path"])
        url = value.get("url") or ""
        if url.startswith("data:") and "," in url:
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except ValueError:
                return b""
        return None
    return value


def image_problem(error: ImageError, source: Any) -> str:
    """The loader's complaint, worded for the page and without server paths."""
    detail = str(error)
    if "readable" in detail or "corrupt" in detail or "empty" in detail:
        return (
            "The uploaded file could not be read as an image: it may be corrupt, truncated, "
            "or not an image at all. Try a JPEG, PNG or WebP photo."
        )
    if isinstance(source, str) and source:
        detail = detail.replace(source, "the file")
    return f"The image cannot be used: {detail}."


# --- examples -------------------------------------------------------------------------------


def data_dir() -> Path:
    """The bundled data folder: ``$VPAGENT_DATA_DIR``, else ``<repo>/../shared/data``."""
    configured = os.environ.get("VPAGENT_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def find_examples(directory: Path | None = None) -> list[tuple[str, str]]:
    """(photo path, question) pairs for the bundled photos; empty if the folder is missing.

    The question is the first one ``dev.jsonl`` asks about that photo, if there is one.
    """
    directory = data_dir() if directory is None else Path(directory)
    images = directory / "images"
    if not images.is_dir():
        return []
    questions: dict[str, str] = {}
    dev = directory / "dev.jsonl"
    if dev.is_file():
        for line in dev.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict) and isinstance(item.get("question"), str):
                questions.setdefault(Path(str(item.get("image", ""))).name, item["question"])
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [(str(p), questions.get(p.name, DEFAULT_QUESTION)) for p in photos]


# --- formatting -----------------------------------------------------------------------------


def _short(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def tidy(value: Any) -> Any:
    """``value`` with floats rounded for display (scores to 2 decimals, pixels to 1)."""
    if isinstance(value, float):
        return round(value, 2) if abs(value) < 10 else round(value, 1)
    if isinstance(value, list | tuple):
        return [tidy(item) for item in value]
    if isinstance(value, dict):
        return {key: tidy(item) for key, item in value.items()}
    return value


def _step_args(step: Step) -> dict[str, Any]:
    return {k: tidy(v) for k, v in step.args.items() if k != "image"}


def step_rows(trace: Trace | None) -> list[list[Any]]:
    """One row per tool call: number, tool, arguments, output (or error), milliseconds."""
    if trace is None:
        return []
    return [
        [
            step.index + 1,
            step.tool,
            _short(_step_args(step)),
            _short(tidy(step.result)) if step.ok else f"error: {_short(step.error or '')}",
            round(step.duration_s * 1000, 1),
        ]
        for step in trace.steps
    ]


def summarize(result: Any) -> str:
    """A few words for a step's output: "2 found", "True", "'red'"."""
    if isinstance(result, list):
        if all(isinstance(item, dict) and "box" in item for item in result):
            return f"{len(result)} found"
        return _short(result, 80)
    if isinstance(result, dict):
        if "box" in result:
            return "box " + _short([round(v) for v in result["box"]], 40)
        return _short(result, 80)
    if isinstance(result, str):
        return _short(repr(result), 80)
    if isinstance(result, float):
        return f"{result:.3g}"
    return _short(result, 80)


def step_gallery(trace: Trace | None, pixels: np.ndarray) -> list[tuple[Any, str]]:
    """Each step drawn on the image (region, boxes, mask), captioned with call and output."""
    if trace is None:
        return []
    items = []
    for step in trace.steps:
        if not step.artifacts:
            continue
        outcome = summarize(step.result) if step.ok else f"error: {_short(step.error or '', 80)}"
        args = ", ".join(_short(v, 40) for k, v in _step_args(step).items() if k != "box")
        caption = (
            f"{step.index + 1}. {step.tool}({args}) → {outcome} · {step.duration_s * 1000:.0f} ms"
        )
        items.append((draw_step(pixels, step), caption))
    return items


def rationale_frame(trace: Trace | None, pixels: np.ndarray) -> str:
    """The full visual-rationale page, isolated in a sandboxed iframe (no scripts)."""
    if trace is None:
        return ""
    page = html.escape(render_html(trace, pixels), quote=True)
    return (
        '<iframe class="rationale-frame" sandbox="" title="visual rationale" '
        f'srcdoc="{page}"></iframe>'
    )


EVENT_TEXT = {
    "planning": "Planning a program with the LLM",
    "running edited program": "Running the edited program in the sandbox",
}


def describe_event(message: str) -> str:
    """A progress message from the agent, worded for people."""
    if message in EVENT_TEXT:
        return EVENT_TEXT[message]
    if message.startswith("running program "):
        return f"Running program {message.rsplit(' ', 1)[-1]} in the sandbox"
    if message.startswith("repairing: "):
        kind = message.split(": ", 1)[1]
        return f"The program failed ({kind}); asking the LLM to repair it"
    if message.startswith("planning sample "):
        return f"Planning sample program {message.rsplit(' ', 1)[-1]}"
    if message.startswith("step "):
        number, _, tool = message[5:].partition(": ")
        return f"Step {number}: {tool}"
    return message


def _progress(events: list[tuple[float, str]], started: float) -> str:
    latest = events[-1][1] if events else "Starting"
    lines = [f"{BUSY} **{latest}…** ({time.perf_counter() - started:.1f} s)"]
    if len(events) > 1:
        lines.append(" → ".join(f"{text} ({at:.1f} s)" for at, text in events[:-1][-6:]))
    return "\n\n".join(lines)


def _timings_text(timings: dict[str, float]) -> str:
    names = {"plan_s": "planning", "execute_s": "running", "total_s": "total"}
    parts = [f"{names.get(k, k)} {v:.2f} s" for k, v in timings.items() if k in names]
    return ", ".join(parts)


# --- the controller -------------------------------------------------------------------------


@dataclass
class HistoryEntry:
    time: str
    question: str
    answer: str
    outcome: str
    seconds: float
    program: str = ""


@dataclass
class _Run:
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class _Done:
    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error


class AppController:
    """What the page's buttons do; the agent runs in a worker thread, progress is streamed."""

    def __init__(self, agent: Agent, settings: Settings) -> None:
        self.agent = agent
        self.settings = settings
        self.busy = threading.Lock()  # one run at a time on the shared agent
        self.runs: dict[str, _Run] = {}
        self.files = Path(tempfile.mkdtemp(prefix="vpagent-ui-"))

    def close(self) -> None:
        shutil.rmtree(self.files, ignore_errors=True)

    # the components this controller writes; set by build_ui
    status: Any = None
    answer: Any = None
    program: Any = None
    gallery: Any = None
    steps: Any = None
    rationale: Any = None
    download: Any = None
    history_state: Any = None
    history_table: Any = None

    def _message(self, text: str) -> dict[Any, Any]:
        return {self.status: text}

    def _cleared(self, text: str) -> dict[Any, Any]:
        return {
            self.status: text,
            self.answer: "",
            self.gallery: [],
            self.steps: [],
            self.rationale: "",
            self.download: None,
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

    def _stream(
        self, request: gr.Request | None, work: Callable[[Callable[[str], None]], Any]
    ) -> Iterator[tuple[str | None, Any]]:
        """Run ``work(on_event)`` in a thread; yield (progress markdown, None) then (None, result).

        The worker's exceptions are yielded as the result, never raised into gradio.
        """
        run = _Run()
        session = request.session_hash if request is not None else None
        if session:
            self.runs[session] = run
        started = time.perf_counter()
        events: list[tuple[float, str]] = []
        while not self.busy.acquire(timeout=POLL_SECONDS):
            if run.cancelled.is_set():
                yield None, _Done(error=RunCancelled())
                return
            yield (
                f"{BUSY} Waiting for the previous run to finish… "
                f"({time.perf_counter() - started:.0f} s)",
                None,
            )

        def on_event(message: str) -> None:
            if run.cancelled.is_set():
                raise RunCancelled()
            run.events.put(message)

        def worker() -> None:
            try:
                run.events.put(_Done(value=work(on_event)))
            except BaseException as error:  # reported in the page, logged here
                if not isinstance(error, RunCancelled | ValueError):
                    log.exception("the run failed")
                run.events.put(_Done(error=error))
            finally:
                self.busy.release()

        threading.Thread(target=worker, name="vpagent-ui-run", daemon=True).start()
        last_yield = 0.0
        while True:
            try:
                item = run.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                item = None
            if isinstance(item, _Done):
                if session and self.runs.get(session) is run:
                    del self.runs[session]
                yield None, item
                return
            if item is not None:
                events.append((time.perf_counter() - started, describe_event(item)))
            if item is not None or time.perf_counter() - last_yield >= 1.0:
                last_yield = time.perf_counter()
                yield _progress(events, started), None

    def _failure(self, error: BaseException | None) -> str:
        if isinstance(error, RunCancelled):
            return f"{STOPPED} Cancelled."
        if isinstance(error, ValueError):
            return f"{PROBLEM} {error}"
        kind = type(error).__name__ if error is not None else "unknown error"
        detail = _short(str(error), 200)
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
            self.status: headline,
            self.answer: answer,
            self.gallery: gr.Gallery(value=pictures, selected_index=0 if pictures else None),
            self.steps: step_rows(trace),
            self.rationale: rationale_frame(trace, pixels),
            self.download: self._write_rationale(trace, pixels) if trace is not None else None,
        }
        if program is not None:
            update[self.program] = program
        return update

    def ask(
        self,
        image: Any,
        question: str | None,
        history: list[HistoryEntry] | None,
        mode: str | None = None,
        request: gr.Request | None = None,
    ) -> Iterator[dict[Any, Any]]:
        """Plan, run and explain: streams progress, then the answer, program and rationale.

        ``mode`` is who answers (``agent.mode`` for this question; None: the configured one).
        """
        try:
            pixels, question = self._inputs(image, question)
        except ValueError as error:
            yield self._cleared(f"{PROBLEM} {error}")
            return
        yield {**self._cleared(f"{BUSY} **Starting…**"), self.program: ""}
        started = time.perf_counter()
        done: _Done | None = None
        for progress, outcome in self._stream(
            request,
            lambda on_event: self.agent.ask(pixels, question, on_event=on_event, mode=mode or None),
        ):
            if progress is not None:
                yield self._message(progress)
            done = outcome
        assert done is not None
        seconds = time.perf_counter() - started
        if done.error is not None or not isinstance(done.value, Result):
            message = self._failure(done.error)
            history, rows = self._add_history(
                history,
                HistoryEntry(_now(), question, "", message.split(" ", 1)[-1], round(seconds, 1)),
            )
            yield {**self._message(message), self.history_state: history, self.history_table: rows}
            return
        result: Result = done.value
        tries = f"{result.programs_tried} program{'s' if result.programs_tried != 1 else ''}"
        if result.ok:
            headline = (
                f"{DONE} Answered in {seconds:.1f} s ({_timings_text(result.timings)}; {tries})."
            )
            outcome = "answered"
        else:
            error = _short(result.error or "", 600)
            headline = f"{PROBLEM} No answer after {tries}. {error}"
            outcome = f"failed: {result.error_kind}"
        if result.answer is not None and not result.verified:
            reason = _short(result.unverified_reason or "", 600)
            headline = f"{PROBLEM} Unverified answer ({tries}): {reason}"
            outcome = "unverified"
        if result.answered_by == STUDENT:
            headline = student_headline(result, seconds)
            outcome = "student" if result.answer is not None else "student: no answer"
        history, rows = self._add_history(
            history,
            HistoryEntry(
                _now(),
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
            self.history_state: history,
            self.history_table: rows,
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
        if len(program) > MAX_PROGRAM_CHARS:
            yield self._cleared(
                f"{PROBLEM} The program is longer than {MAX_PROGRAM_CHARS} characters."
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

        def work(on_event: Callable[[str], None]) -> Any:
            on_event("running edited program")
            return self.agent.runner.run(program, pixels, question=asked or None, on_event=on_event)

        done: _Done | None = None
        for progress, outcome in self._stream(request, work):
            if progress is not None:
                yield self._message(progress)
            done = outcome
        assert done is not None
        seconds = time.perf_counter() - started
        label = f"{asked} (edited program)" if asked else "(edited program)"
        if done.error is not None:
            message = self._failure(done.error)
            history, rows = self._add_history(
                history, HistoryEntry(_now(), label, "", message, round(seconds, 1), program)
            )
            yield {**self._message(message), self.history_state: history, self.history_table: rows}
            return
        execution, trace = done.value
        trace.timings["total_s"] = seconds
        if execution.ok:
            headline = f"{DONE} The edited program answered in {seconds:.1f} s."
            outcome = "answered (edited)"
        else:
            headline = f"{PROBLEM} The edited program failed: {_short(execution.feedback(), 600)}"
            outcome = f"failed: {execution.error_kind}"
        history, rows = self._add_history(
            history,
            HistoryEntry(
                _now(), label, execution.answer or "", outcome, round(seconds, 1), program
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
            self.history_state: history,
            self.history_table: rows,
        }

    def cancel(self, request: gr.Request | None = None) -> str:
        """Stop this session's run at its next step (an LLM call in flight finishes first)."""
        run = self.runs.get(request.session_hash) if request and request.session_hash else None
        if run is not None:
            run.cancelled.set()
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
            infos = self.agent.runner.server.describe()
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


def history_rows(history: list[HistoryEntry]) -> list[list[Any]]:
    return [
        [i + 1, e.time, e.question, e.answer, e.outcome, e.seconds] for i, e in enumerate(history)
    ]


def _now() -> str:
    return datetime.now().strftime("%H:%M:%S")


def student_headline(result: Result, seconds: float) -> str:
    """The status line for an answer from the distilled student (one pass, no program)."""
    confidence = result.student_confidence or 0.0
    if result.answer is None:
        return f"{PROBLEM} The student gave no answer (confidence {confidence:.2f})."
    return (
        f"{DONE} Answered by the distilled student in {seconds:.1f} s (confidence "
        f"{confidence:.2f}, one pass): no program was run, so there are no steps to show."
    )


def student_row(agent: Agent) -> list[Any]:
    """The Backends table's row for the agent's student."""
    assert agent.student is not None
    student = agent.student
    return [
        "student (first answerer)",
        type(student.student).__name__,
        str(student.folder),
        "real",
        str(student.student.model.device),
        f"agent.mode = {student.mode}, threshold {student.threshold:.2f}",
    ]


def planner_description(agent: Agent, settings: Settings) -> str:
    """Which LLM writes the programs, as a markdown line."""
    chat = agent.planner.chat_model
    kind = type(chat).__name__
    llm = settings.llm
    model_id = getattr(agent.planner, "model_id", "")
    if str(model_id).startswith(f"{llm.provider}:"):
        try:
            model = llm.resolved_model()
        except ValueError:
            model = "(no model set)"
        where = getattr(chat, "openai_api_base", None) or llm.base_url
        served = f" via {kind}" + (f" at {where}" if where else "")
        return (
            f"**Planner LLM:** `{llm.provider}` · `{model}` · temperature {llm.temperature}"
            f"{served}. It also answers `llm_query` calls."
        )
    return f"**Planner LLM:** `{kind}` (model id `{model_id}`; not taken from the settings)."


# --- the page -------------------------------------------------------------------------------


def build_ui(
    agent: Agent,
    settings: Settings | None = None,
    examples: list[tuple[str, str]] | None = None,
) -> gr.Blocks:
    """The Gradio page for ``agent``. ``examples``: (photo, question) pairs; default: bundled."""
    settings = settings or agent.runner.settings
    if examples is None:
        examples = find_examples()
    controller = AppController(agent, settings)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        demo.vpagent_controller = controller  # type: ignore[attr-defined]
        history_state = gr.State([])
        gr.Markdown(
            f"# {TITLE}\nAsk a question about a photo. An LLM writes a short Python program "
            "against vision tools, a sandbox runs it, and every tool call is shown on the image."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                image = gr.Image(
                    label="Image (upload, paste, or pick an example)",
                    type="filepath",
                    sources=["upload", "clipboard"],
                    buttons=["fullscreen"],
                    elem_id="image",
                    height=360,
                )
                question = gr.Textbox(
                    label="Question",
                    placeholder="How many dogs are there?",
                    lines=1,
                    max_lines=3,
                    elem_id="question",
                    render=False,  # placed below the examples that fill it
                )
                if examples:
                    gr.Examples(
                        examples=[[path, text] for path, text in examples],
                        inputs=[image, question],
                        label="Bundled example photos (click one: it loads with its question)",
                        examples_per_page=12,
                        visible_columns=[0],
                        cache_examples=False,
                        elem_id="examples",
                    )
                else:
                    gr.Markdown(
                        f"*No bundled example photos were found (looked in `{data_dir()}/images`;"
                        " set `VPAGENT_DATA_DIR`). Upload or paste an image instead.*",
                        elem_id="no-examples",
                    )
                question.render()
                mode = gr.Radio(
                    choices=[(MODE_LABELS[name], name) for name in MODES],
                    value=settings.agent.mode,
                    label="Who answers",
                    info=(
                        f"Student: {agent.student.folder}"
                        if agent.student is not None
                        else "Student modes need a trained student: set agent.student "
                        "(vpagent distill train)."
                    ),
                    interactive=agent.student is not None,
                    elem_id="mode",
                )
                with gr.Row():
                    ask_button = gr.Button("Ask", variant="primary", elem_id="ask")
                    cancel_button = gr.Button("Cancel", variant="stop", elem_id="cancel")
                program = gr.Code(
                    label="Generated program (edit it and run it again in the sandbox)",
                    language="python",
                    interactive=True,
                    lines=8,
                    max_lines=30,
                    elem_id="program",
                )
                run_button = gr.Button("Run edited program", elem_id="run-program")
            with gr.Column(scale=6):
                status = gr.Markdown("Ready.", elem_id="status")
                answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
                with gr.Tabs():
                    with gr.Tab("Visual rationale", id="rationale"):
                        gallery = gr.Gallery(
                            label="Each tool call drawn on the image (click to enlarge)",
                            columns=3,
                            height=460,
                            object_fit="contain",
                            preview=True,
                            interactive=False,
                            buttons=["download", "fullscreen"],
                            elem_id="steps-gallery",
                        )
                        steps = gr.Dataframe(
                            headers=STEP_HEADERS,
                            label="Steps: tool calls, outputs and timings",
                            interactive=False,
                            wrap=True,
                            column_widths=["7%", "14%", "30%", "37%", "12%"],
                            max_height=400,
                            elem_id="steps-table",
                        )
                        with gr.Accordion("Full rationale page", open=False):
                            rationale = gr.HTML(elem_id="rationale-page")
                            download = gr.File(label="Download the rationale (HTML)")
                    with gr.Tab("History", id="history"):
                        history_table = gr.Dataframe(
                            headers=HISTORY_HEADERS,
                            label="This session's questions (click a row to load it again)",
                            interactive=False,
                            wrap=True,
                            elem_id="history",
                        )
                    with gr.Tab("Backends", id="backends"):
                        planner_line = gr.Markdown(elem_id="planner")
                        backends_table = gr.Dataframe(
                            headers=BACKEND_HEADERS,
                            label="Which backend and model serves each role",
                            interactive=False,
                            wrap=True,
                            elem_id="backends",
                        )

        controller.status, controller.answer, controller.program = status, answer, program
        controller.gallery, controller.steps = gallery, steps
        controller.rationale, controller.download = rationale, download
        controller.history_state, controller.history_table = history_state, history_table
        outputs = [
            status,
            answer,
            program,
            gallery,
            steps,
            rationale,
            download,
            history_state,
            history_table,
        ]
        ask_event = gr.on(
            [ask_button.click, question.submit],
            controller.ask,
            inputs=[image, question, history_state, mode],
            outputs=outputs,
            api_name="ask",
            concurrency_id="agent",
            concurrency_limit=1,
            show_progress="minimal",  # queue position and a timer, on the status line
            show_progress_on=[status],
            preprocess=False,  # the app reads the upload itself (see image_source)
        )
        run_event = run_button.click(
            controller.run_program,
            inputs=[image, question, program, history_state],
            outputs=outputs,
            api_name="run_program",
            concurrency_id="agent",
            concurrency_limit=1,
            show_progress="minimal",
            show_progress_on=[status],
            preprocess=False,
        )
        cancel_button.click(
            controller.cancel,
            outputs=[status],
            api_name="cancel",
            cancels=[ask_event, run_event],
            queue=False,
        )
        history_table.select(
            controller.recall, inputs=[history_state], outputs=[question, program], api_name=False
        )
        demo.load(controller.backends, outputs=[backends_table, planner_line], api_name="backends")
    return demo


def launch_options(
    settings: Settings, host: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: loopback by default, never a share link."""
    return {
        "server_name": host or settings.server.host,
        "server_port": settings.server.ui_port if port is None else port,
        "share": False,
        "inbrowser": False,
        "show_error": False,
        "ssr_mode": False,
        "max_file_size": f"{settings.server.max_upload_mb}mb",
        "css": UI_CSS,
        "theme": gr.themes.Default(),
        "footer_links": ["api", "settings"],
        "run_history": False,  # the page keeps its own session history
        "quiet": True,
    }


def launch(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Build the agent that ``settings`` describe and serve the app until interrupted."""
    from vpagent.agent import build_agent

    with build_agent(settings) as agent:
        demo = build_ui(agent, settings)
        try:
            demo.queue(default_concurrency_limit=1).launch(
                **launch_options(settings, host, port), prevent_thread_lock=True
            )
            print(f"vpagent ui: {demo.local_url} (Ctrl+C to stop)", flush=True)
            demo.block_thread()
        finally:
            demo.close()
            demo.vpagent_controller.close()  # type: ignore[attr-defined]
