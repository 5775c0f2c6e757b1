"""An answer, always, with honest confidence: graded tool results, the unfixable-refusal stop,
and the fallback answer when no program succeeds (Agent, ProgramHost, HTTP API)."""

from __future__ import annotations

import io

import numpy as np
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from PIL import Image

from tests.fixtures.agents import KeywordEmbed
from tests.fixtures.fakes import BrightSpotDetector, spots_image
from vpagent.agent import Agent
from vpagent.config import load_settings
from vpagent.http import create_app
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.program_runner import ProgramRunner
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.roles import VQA, Matcher
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import ToolInfo


def program(body: str) -> str:
    return f"```python\ndef execute_command(image):\n    {body}\n```"


COUNT = program("return len(image.find('spot'))")
TREE = program("return 'yes' if image.exists('tree') else 'no'")
CRASH = program("return 1 / 0")
SHINY = program("return 'yes' if image.verify_property('spot', 'shiny') else 'no'")
LOCATE_NOTHING = program("return image.locate('spot').left")
WET = program("return image.simple_query('Is the spot wet?')")


class GuessingVQA(VQA):
    """Refuses every direct answer (like the scene stand-in without the facts) but guesses."""

    def __init__(self, can_guess: bool = True) -> None:
        self.can_guess = can_guess
        self.guesses: list[str] = []

    def info(self) -> ToolInfo:
        return ToolInfo(role="vqa", backend="guessing", model="fake", stand_in=True)

    def answer_batch(self, images: list[np.ndarray], questions: list[str]) -> list[str]:
        raise CannotAnswer("the description does not say")

    def guess(self, image: np.ndarray, question: str) -> str:
        if not self.can_guess:
            raise CannotAnswer("no guess either")
        self.guesses.append(question)
        return "yes" if question.startswith("Is the") else "probably two"


class RefusingMatcher(Matcher):
    def info(self) -> ToolInfo:
        return ToolInfo(role="matcher", backend="refusing", model="fake", stand_in=True)

    def score_batch(self, images, texts):  # type: ignore[no-untyped-def]
        return [[0.0] * len(options) for options in texts]

    def verify(self, image: np.ndarray, name: str, prop: str) -> bool:
        raise CannotAnswer(f"cannot check '{prop}'")


def make_agent(replies: list[str], vqa: GuessingVQA, max_repairs: int = 2) -> Agent:
    settings = load_settings(sandbox={"cpu_seconds": 2, "wall_seconds": 10})
    specialists = {"detector": BrightSpotDetector(), "vqa": vqa, "matcher": RefusingMatcher()}
    toolbox = Toolbox(settings.toolbox_config(), specialists=specialists)
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    planner = Planner(FakeListChatModel(responses=replies), retriever, model_id="fake")
    runner = ProgramRunner(settings, toolbox=toolbox, pool_size=1)
    return Agent(planner, runner, max_repairs=max_repairs)


def test_a_program_that_works_is_verified() -> None:
    with make_agent([COUNT], GuessingVQA()) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert result.ok and result.answer == "2"
    assert result.verified and result.unverified_reason is None


def test_a_refusal_stops_the_repair_loop_and_the_fallback_answers() -> None:
    vqa = GuessingVQA()
    with make_agent([TREE, COUNT, COUNT], vqa, max_repairs=2) as agent:
        result = agent.ask(spots_image(), "How many trees are there?")
    assert result.programs_tried == 1  # no re-plan: the detector cannot see trees at all
    assert result.error_kind == "tool_error" and "CannotAnswer" in (result.error or "")
    assert result.answer == "probably two" and not result.verified
    assert vqa.guesses == ["How many trees are there?"]
    reason = result.unverified_reason or ""
    assert "no program succeeded (tool_error)" in reason and "guessing" in reason
    assert "fallback_s" in result.timings


def test_other_failures_are_still_repaired_before_the_fallback() -> None:
    with make_agent([CRASH, CRASH, CRASH], GuessingVQA(), max_repairs=2) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert result.programs_tried == 3 and result.error_kind == "runtime"
    assert result.answer == "probably two" and not result.verified


def test_a_repaired_program_is_verified() -> None:
    with make_agent([CRASH, COUNT], GuessingVQA(), max_repairs=2) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert result.programs_tried == 2 and result.answer == "2" and result.verified


def test_an_unverifiable_property_becomes_a_marked_guess() -> None:
    vqa = GuessingVQA()
    with make_agent([SHINY], vqa) as agent:
        result = agent.ask(spots_image(), "Is the spot shiny?")
    assert result.ok and result.answer == "yes" and not result.verified
    assert vqa.guesses == ["Is the spot shiny? Answer yes or no."]
    assert "step 0 (verify_property): a guess" in (result.unverified_reason or "")
    step = result.trace.steps[0] if result.trace else None
    assert step is not None and "cannot check 'shiny'" in (step.artifacts.unverified or "")


def test_a_question_the_vqa_role_refuses_is_answered_by_its_guess_unverified() -> None:
    vqa = GuessingVQA()
    with make_agent([WET], vqa) as agent:
        result = agent.ask(spots_image(), "Is the spot wet?")
    assert result.ok and result.answer == "yes" and not result.verified
    assert vqa.guesses == ["Is the spot wet?"]


def test_locate_refuses_when_even_a_thorough_search_finds_nothing() -> None:
    dark = np.zeros((60, 80, 3), dtype=np.uint8)
    with make_agent([LOCATE_NOTHING, COUNT], GuessingVQA(), max_repairs=1) as agent:
        result = agent.ask(dark, "Where is the spot?")
    assert result.programs_tried == 1 and "even searching harder" in (result.error or "")
    assert result.answer == "probably two" and not result.verified


def test_without_any_answer_the_result_says_why() -> None:
    with make_agent([TREE], GuessingVQA(can_guess=False)) as agent:
        result = agent.ask(spots_image(), "Is there a tree?")
    assert result.answer is None and not result.verified and not result.ok
    assert "no fallback answer" in (result.unverified_reason or "")


def test_the_http_api_reports_verification() -> None:
    with make_agent([TREE], GuessingVQA()) as agent:
        client = TestClient(create_app(agent))
        buffer = io.BytesIO()
        Image.fromarray(spots_image()).save(buffer, format="PNG")
        files = {"image": ("spots.png", buffer.getvalue(), "image/png")}
        body = client.post("/v1/ask", files=files, data={"question": "Is there a tree?"}).json()
    assert body["answer"] == "yes" and body["verified"] is False
    assert "no program succeeded" in body["unverified_reason"]
