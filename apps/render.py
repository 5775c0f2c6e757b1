"""Pure rendering for the app: Trace and Result -> rows, captions, gallery, HTML; no Gradio."""

from __future__ import annotations

import html
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from vpagent.agent import Agent
from vpagent.attempts import Attempt
from vpagent.config import Settings
from vpagent.result import Result
from vpagent.trace.records import Step, Trace
from vpagent.trace.render import draw_step, render_html

MAX_CELL_CHARS = 300
HISTORY_HEADERS = ["#", "time", "question", "answer", "outcome", "seconds"]
STEP_HEADERS = ["#", "tool", "arguments", "output", "ms"]
BACKEND_HEADERS = ["role", "backend", "model", "real or stand-in", "device", "note"]
MODE_LABELS = {
    "program": "Program (plan, run, explain)",
    "student": "Student (one pass, fast)",
    "student-then-program": "Student, then a program when it is unsure",
}


# status marks that plain system fonts have (emoji fonts are often missing on servers)
DONE, PROBLEM, BUSY, STOPPED = "✔", "⚠", "⟳", "■"


def short(value: Any, limit: int = MAX_CELL_CHARS) -> str:
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
            short(_step_args(step)),
            short(tidy(step.result)) if step.ok else f"error: {short(step.error or '')}",
            round(step.duration_s * 1000, 1),
        ]
        for step in trace.steps
    ]


def summarize(result: Any) -> str:
    """A few words for a step's output: "2 found", "True", "'red'"."""
    if isinstance(result, list):
        if all(isinstance(item, dict) and "box" in item for item in result):
            return f"{len(result)} found"
        return short(result, 80)
    if isinstance(result, dict):
        if "box" in result:
            return "box " + short([round(v) for v in result["box"]], 40)
        return short(result, 80)
    if isinstance(result, str):
        return short(repr(result), 80)
    if isinstance(result, float):
        return f"{result:.3g}"
    return short(result, 80)


def step_gallery(trace: Trace | None, pixels: np.ndarray) -> list[tuple[Any, str]]:
    """Each step drawn on the image (region, boxes, mask), captioned with call and output."""
    if trace is None:
        return []
    items = []
    for step in trace.steps:
        if not step.artifacts.drawable:
            continue
        outcome = summarize(step.result) if step.ok else f"error: {short(step.error or '', 80)}"
        args = ", ".join(short(v, 40) for k, v in _step_args(step).items() if k != "box")
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


def progress_text(events: list[tuple[float, str]], started: float) -> str:
    latest = events[-1][1] if events else "Starting"
    lines = [f"{BUSY} **{latest}…** ({time.perf_counter() - started:.1f} s)"]
    if len(events) > 1:
        lines.append(" → ".join(f"{text} ({at:.1f} s)" for at, text in events[:-1][-6:]))
    return "\n\n".join(lines)


def timings_text(timings: dict[str, float]) -> str:
    names = {"plan_s": "planning", "execute_s": "running", "total_s": "total"}
    parts = [f"{names.get(k, k)} {v:.2f} s" for k, v in timings.items() if k in names]
    return ", ".join(parts)


def attempt_title(number: int, attempt: Attempt) -> str:
    """One attempt in a few words: which it was and how it ended."""
    if attempt.kind == "fallback":
        what = "Fallback answer without a program"
    elif attempt.kind == "student":
        what = "The distilled student"
    else:
        what = f"Program {number} (sample {attempt.sample}, repair {attempt.repair})"
    if attempt.reason is None:
        return f"{what}: answered {attempt.answer!r}"
    return f"{what}: failed ({attempt.reason}) {short(attempt.message or '', 300)}"


def attempts_markdown(attempts: list[Attempt]) -> str:
    """Markdown for the attempts behind an answer when any failed: each one's outcome, the
    failed programs in full and where a tool raised; empty when the first attempt answered."""
    if all(attempt.reason is None for attempt in attempts):
        return ""
    lines = [f"**{len(attempts)} attempts:**", ""]
    programs = 0
    for attempt in attempts:
        programs += attempt.kind == "program"
        lines.append(f"{programs if attempt.kind == 'program' else '-'}. "
                     f"{attempt_title(programs, attempt)}")  # fmt: skip
        if attempt.reason is not None and attempt.program:
            lines += ["", "```python", attempt.program.strip(), "```"]
        if attempt.traceback:
            lines += ["", "```text", attempt.traceback.strip(), "```"]
    return "\n".join(lines)


@dataclass
class HistoryEntry:
    time: str
    question: str
    answer: str
    outcome: str
    seconds: float
    program: str = ""


def history_rows(history: list[HistoryEntry]) -> list[list[Any]]:
    return [
        [i + 1, e.time, e.question, e.answer, e.outcome, e.seconds] for i, e in enumerate(history)
    ]


def now_text() -> str:
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
