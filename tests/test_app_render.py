"""The app's pure rendering: Trace and events -> rows, captions, progress, HTML; no Gradio."""

from __future__ import annotations

import time

from tests.fixtures.fakes import spots_image
from vpagent.apps.render import (
    MODE_LABELS,
    progress_text,
    rationale_frame,
    step_rows,
    summarize,
)
from vpagent.config import ANSWER_MODES
from vpagent.events import Planning, RunningProgram, Starting, ToolStep
from vpagent.trace.records import ImageInfo, Step, Trace


def _trace() -> Trace:
    return Trace(
        program="def execute_command(image):\n    return '<script>alert(1)</script>'",
        image=ImageInfo(sha256="0" * 64, width=80, height=40),
        steps=[
            Step(index=0, tool="find", args={"name": "spot"}, duration_s=0.01234,
                 result=[{"box": [10.04, 10.0, 20.0, 20.0], "score": 0.987654}] * 2),
            Step(index=1, tool="verify_property", args={"name": "spot", "property": "red"},
                 error="CannotAnswer: no colour here", error_kind="cannot_answer"),
        ],
    )  # fmt: skip


def test_one_row_per_tool_call_with_rounded_output_or_its_error() -> None:
    rows = step_rows(_trace())
    assert [row[:2] for row in rows] == [[1, "find"], [2, "verify_property"]]
    assert '"score": 0.99' in rows[0][3] and rows[0][4] == 12.3
    assert rows[1][3] == "error: CannotAnswer: no colour here"
    assert step_rows(None) == []


def test_a_step_output_in_a_few_words() -> None:
    boxes = [{"box": [0, 0, 1, 1]}, {"box": [1, 1, 2, 2]}]
    assert summarize(boxes) == "2 found"
    assert summarize("red") == "'red'"
    assert summarize(0.123456) == "0.123"


def test_progress_shows_the_latest_event_worded_for_people_and_the_ones_before() -> None:
    events = [Planning(0), RunningProgram(1), ToolStep(1, "find")]
    started = time.perf_counter()
    text = progress_text([(0.5 * i, event.describe()) for i, event in enumerate(events)], started)
    latest, earlier = text.split("\n\n")
    assert "Step 1: find" in latest
    assert earlier.startswith("Planning a program with the LLM (0.0 s) → Running program 1")


def test_the_rationale_page_is_escaped_into_a_sandboxed_frame() -> None:
    frame = rationale_frame(_trace(), spots_image())
    assert frame.startswith('<iframe class="rationale-frame" sandbox=""')
    assert "<script>" not in frame


def test_every_answer_mode_has_a_label() -> None:
    assert tuple(MODE_LABELS) == ANSWER_MODES


def test_an_event_is_worded_for_people_without_losing_its_capitals() -> None:
    assert Starting("loading Qwen2.5-Coder").describe() == "Loading Qwen2.5-Coder"
