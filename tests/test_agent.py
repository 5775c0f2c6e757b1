"""The Agent with a scripted chat model and fake tools: repair loop, voting, batches, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage
from pydantic import Field

from tests.fakes import BrightSpotDetector, spots_image
from tests.test_planner import KeywordEmbed
from vpagent.agent import Agent
from vpagent.config import load_settings
from vpagent.images import ImageError
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.runner import ProgramRunner
from vpagent.tools.server import ToolServer

COUNT = "```python\ndef execute_command(image):\n    return len(image.find('spot'))\n```"


class RecordingChatModel(FakeListChatModel):
    """Scripted replies; remembers the last prompt it was sent."""

    last_prompt: list[BaseMessage] = Field(default_factory=list)

    def _call(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.last_prompt = list(messages)
        return super()._call(messages, stop, run_manager, **kwargs)


def make_agent(responses: list[str], **options) -> Agent:  # type: ignore[no-untyped-def]
    settings = load_settings(sandbox={"cpu_seconds": 2, "wall_seconds": 10})
    server = ToolServer(settings, specialists={"detector": BrightSpotDetector()})
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    planner = Planner(RecordingChatModel(responses=responses), retriever, model_id="fake")
    return Agent(planner, ProgramRunner(settings, server=server, pool_size=1), **options)


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


def test_an_answer_outside_the_offered_options_is_repaired() -> None:
    breed = "```python\ndef execute_command(image):\n    return 'whippet'\n```"
    side = "```python\ndef execute_command(image):\n    return 'left'\n```"
    with make_agent([breed, side]) as agent:
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
