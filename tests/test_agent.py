"""The Agent with a scripted chat model and fake tools: repair loop, voting, batches, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from vpagent.events import Event, Planning, Repairing, RunningProgram, TokensWritten, ToolStep
from vpagent.images import ImageError


def test_prose_then_broken_then_good_program() -> None:
    with make_agent(
        ["There are two spots.", "def execute_command(image):\n    return (", COUNT]
    ) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert result.ok and result.answer == "2"
    assert "image.find('spot')" in (result.program or "")
    assert result.trace is not None and result.trace.steps[0].tool == "find"
    assert (
        result.timings["plan_s"] >= 0 and result.timings["total_s"] >= result.timings["execute_s"]
    )


def test_runtime_error_is_repaired_with_feedback() -> None:
    crashing = "```python\ndef execute_command(image):\n    return image.find('spot')[5].label\n```"
    with make_agent([crashing, COUNT]) as agent:
        result = agent.ask(spots_image(), "How many spots?")
        assert result.answer == "2" and result.programs_tried == 2
        repair_request = str(agent.planner.chat_model.last_prompt[-1].content)
    assert "IndexError" in repair_request and "line 2" in repair_request


def test_progress_reaches_the_listener_as_typed_events_in_order() -> None:
    crashing = "```python\ndef execute_command(image):\n    return image.find('spot')[5].label\n```"
    events: list[Event] = []
    with make_agent([crashing, COUNT]) as agent:
        agent.ask(spots_image(), "How many spots?", on_event=events.append)
    kinds = [type(event) for event in events if not isinstance(event, TokensWritten)]
    assert kinds == [Planning, RunningProgram, ToolStep, Repairing, RunningProgram, ToolStep]
    assert events[0] == Planning(0) and str(events[0]) == "planning"
    repairing = next(event for event in events if isinstance(event, Repairing))
    assert repairing.error_kind == "runtime" and "repair" in repairing.describe()
    steps = [event for event in events if isinstance(event, ToolStep)]
    assert steps[0] == ToolStep(1, "find") and str(steps[0]) == "step 1: find"


def test_an_answer_outside_the_offered_options_is_repaired_where_the_planner_can() -> None:
    breed = "```python\ndef execute_command(image):\n    return 'whippet'\n```"
    side = "```python\ndef execute_command(image):\n    return 'left'\n```"
    with make_agent([breed, side], repair_answer_form=True) as agent:
        result = agent.ask(spots_image(), "Is the big spot to the left or to the right?")
        repair_request = str(agent.planner.chat_model.last_prompt[-1].content)
    assert result.answer == "left" and result.programs_tried == 2
    assert "'whippet'" in repair_request and "'left' or 'right'" in repair_request


def test_gives_up_with_the_last_error_after_max_repairs() -> None:
    crashing = "```python\ndef execute_command(image):\n    return 1 / 0\n```"
    with make_agent([crashing], max_repairs=1) as agent:
        result = agent.ask(spots_image(), "How many spots?")
    assert not result.ok and result.error_kind == "runtime"
    assert "ZeroDivisionError" in (result.error or "") and result.programs_tried == 2


def test_self_consistency_vote() -> None:
    answers = ["3", "2", "2"]
    responses = [f"```python\ndef execute_command(image):\n    return '{a}'\n```" for a in answers]
    with make_agent(responses, samples=3) as agent:
        result = agent.ask(spots_image(), "How many spots?")
    assert result.answer == "2" and result.programs_tried == 3


def test_batch_runs_concurrently_and_keeps_bad_items_in_place() -> None:
    with make_agent([COUNT]) as agent:
        results = agent.ask_batch(
            [(spots_image(), "How many spots?"), (spots_image(), "  "), (b"junk", "How many?")]
            + [(spots_image(), f"How many spots ({i})?") for i in range(3)],
            max_workers=3,
        )
    assert results[0].answer == "2"  # type: ignore[union-attr]
    assert isinstance(results[1], ValueError) and "empty" in str(results[1])
    assert isinstance(results[2], ImageError)
    assert all(r.answer == "2" for r in results[3:])  # type: ignore[union-attr]


@pytest.mark.parametrize("question", ["", "   ", "x" * 1001])
def test_bad_questions_raise(question: str) -> None:
    with make_agent([COUNT]) as agent, pytest.raises(ValueError):
        agent.ask(np.zeros((32, 32, 3), dtype=np.uint8), question)
