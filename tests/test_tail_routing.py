"""The tail (issue 33): a failure no new program can fix goes to the fallback without another
planning round, one a new program can fix is repaired, and a question's time budget
(``agent.deadline_s``, or per request over HTTP) returns the best answer so far, unverified,
with its reason."""

from __future__ import annotations

import base64
import io
import time

import pytest
from fastapi.testclient import TestClient
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from PIL import Image

from tests.fixtures.agents import KeywordEmbed
from tests.fixtures.fakes import BrightSpotDetector, EchoVQA, spots_image
from vpagent.agent import Agent, build_agent
from vpagent.attempts import FailureReason
from vpagent.config import ServerConfig, load_settings
from vpagent.http import create_app
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.program_runner import ProgramRunner
from vpagent.tools.toolbox import Toolbox


def program(body: str) -> str:
    return f"```python\ndef execute_command(image):\n    {body}\n```"


COUNT = program("return str(len(image.find('spot')))")
TREE = program("return 'yes' if image.exists('tree') else 'no'")  # not in the vocabulary
CRASH = program("return str(1 / 0)")
YES_NO_FOR_WHAT = program("return 'yes' if image.find('spot') else 'no'")
QUERY = program("return image.simple_query('What is next to the spot?')")
SLOW_CRASH = program("return str(len(image.find('spot')) / 0)")  # with a slow detector
SLOW_S = 4.0  # the slow detector's time: past BUDGET_S, which the first reply fits easily
BUDGET_S = 3.0


class SlowSpotDetector(BrightSpotDetector):
    """Finds the spots, slowly: a program that calls it outlasts a short budget."""

    def detect_batch(self, images, names):  # type: ignore[no-untyped-def]
        time.sleep(SLOW_S)
        return super().detect_batch(images, names)


class CountingChat(FakeListChatModel):
    """Scripted replies; counts the planning rounds (one call each here: replies are valid)."""

    calls: int = 0

    def _call(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1
        return super()._call(messages, stop, run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.calls += 1  # the HTTP API streams (it reports tokens as progress)
        return super()._stream(messages, stop, run_manager, **kwargs)


def make_agent(
    replies: list[str],
    stop_repeats: int = 0,
    slow: bool = False,
    sleep: float | None = None,
    **options: object,
) -> tuple[Agent, CountingChat]:
    """``sleep``: the chat model's seconds per streamed character."""
    settings = load_settings(sandbox={"cpu_seconds": 2, "wall_seconds": 10})
    detector = SlowSpotDetector() if slow else BrightSpotDetector()
    specialists = {"detector": detector, "vqa": EchoVQA()}
    toolbox = Toolbox(settings.toolbox_config(), specialists=specialists)
    chat = CountingChat(responses=replies, sleep=sleep)
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    planner = Planner(chat, retriever, model_id="fake", stop_repeats=stop_repeats)
    runner = ProgramRunner(settings, toolbox=toolbox, pool_size=1)
    return Agent(planner, runner, max_repairs=2, **options), chat  # type: ignore[arg-type]


def test_a_vocabulary_miss_goes_to_the_fallback_without_a_repair_round() -> None:
    agent, chat = make_agent([TREE, COUNT, COUNT])
    with agent:
        result = agent.ask(spots_image(), "Is there a tree?")
    assert chat.calls == 1  # the only planning round: no repair prompt was sent
    assert result.programs_tried == 1
    program_attempt, fallback = result.attempts
    assert program_attempt.steps[0].error_kind == FailureReason.CANNOT_ANSWER
    assert fallback.kind == "fallback" and fallback.answer == result.answer
    assert result.answer is not None and result.answer.startswith("Is there a tree?")
    assert not result.verified


def test_a_planner_reply_caught_in_a_loop_goes_to_the_fallback_at_once() -> None:
    loop = "```python\ndef execute_command(image):\n    return best(['spot', " + "'spot', " * 80
    agent, chat = make_agent([loop, COUNT], stop_repeats=4)
    with agent:
        result = agent.ask(spots_image(), "What is next to the spot?")
    assert chat.calls == 1  # the loop was not sent back for another round
    planning, fallback = result.attempts
    assert planning.reason == FailureReason.PLANNING and "again and again" in planning.message
    assert fallback.kind == "fallback" and fallback.answer == result.answer
    assert result.answer is not None and not result.verified


def test_a_runtime_error_is_repaired() -> None:
    agent, chat = make_agent([CRASH, COUNT])
    with agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert chat.calls == 2  # the plan and one repair
    assert result.answer == "2" and result.verified
    assert [a.reason for a in result.attempts] == [FailureReason.RUNTIME, None]


def test_a_program_that_can_only_answer_in_the_wrong_form_goes_to_the_fallback_unrun() -> None:
    agent, chat = make_agent([YES_NO_FOR_WHAT, QUERY], slow=True)
    with agent:
        result = agent.ask(spots_image(), "What is next to the spot?")
    assert chat.calls == 1  # no repair round: the planner does not fix a wrong form
    rejected, fallback = result.attempts
    assert rejected.reason == FailureReason.ANSWER_FORM and rejected.steps == []
    assert "'no' or 'yes'" in (rejected.message or "") and "not run" in (rejected.message or "")
    assert rejected.execute_s < SLOW_S  # the slow detector was never called
    assert fallback.kind == "fallback" and result.answer == fallback.answer
    assert not result.verified


def test_an_answer_of_the_wrong_form_at_run_time_goes_to_the_fallback() -> None:
    answer_yes_no = program("found = 'yes' if image.find('spot') else 'no'\n    return found")
    agent, chat = make_agent([answer_yes_no, QUERY])
    with agent:
        result = agent.ask(spots_image(), "What is next to the spot?")
    assert chat.calls == 1
    ran, fallback = result.attempts
    assert ran.reason == FailureReason.ANSWER_FORM and ran.answer == "yes" and ran.steps
    assert fallback.kind == "fallback" and not result.verified


def test_a_wrong_form_is_repaired_where_the_planner_is_trusted_to_fix_it() -> None:
    agent, chat = make_agent([YES_NO_FOR_WHAT, QUERY], slow=True, repair_answer_form=True)
    with agent:
        result = agent.ask(spots_image(), "What is next to the spot?")
    assert chat.calls == 2  # the plan and one repair
    rejected, repaired = result.attempts
    assert rejected.reason == FailureReason.ANSWER_FORM and rejected.steps == []
    assert repaired.reason is None and result.answer == repaired.answer and result.verified


def test_the_deadline_returns_an_unverified_answer_with_its_reason() -> None:
    agent, chat = make_agent([SLOW_CRASH, COUNT], slow=True, deadline_s=BUDGET_S)
    with agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert chat.calls == 1  # the repair round would have ended past the budget
    assert result.answer is not None and not result.verified  # the fallback's answer
    reasons = [a.reason for a in result.attempts]
    assert reasons == [FailureReason.RUNTIME, FailureReason.DEADLINE, None]
    assert result.attempts[-1].kind == "fallback"
    deadline = result.attempts[1]
    assert deadline.program is None and "budget allowed no repair of program 1" in (
        deadline.message or ""
    )
    assert "budget" in (result.unverified_reason or "")


def test_a_per_question_deadline_overrides_the_agents() -> None:
    agent, chat = make_agent([CRASH, COUNT], deadline_s=1e-6)
    with agent:
        result = agent.ask(spots_image(), "How many spots are there?", deadline_s=60)
    assert chat.calls == 2 and result.answer == "2" and result.verified


def test_a_deadline_stops_further_samples_and_marks_the_vote_unverified() -> None:
    agent, chat = make_agent([COUNT, COUNT, COUNT], slow=True, deadline_s=BUDGET_S)
    agent.samples = 3
    with agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert chat.calls == 1 and result.answer == "2" and not result.verified
    assert result.attempts[-1].reason == FailureReason.DEADLINE
    assert "no sample 2 of 3" in (result.unverified_reason or "")


def test_the_setting_is_checked() -> None:
    assert load_settings(agent={"deadline_s": 12}).agent.deadline_s == 12
    assert load_settings().agent.deadline_s is not None  # a default chosen from measurements
    with pytest.raises(ValueError):
        load_settings(agent={"deadline_s": 0})


def png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    return buffer.getvalue()


def test_http_passes_a_per_request_deadline() -> None:
    agent, chat = make_agent([SLOW_CRASH, COUNT], slow=True)
    with agent:
        client = TestClient(create_app(agent, config=ServerConfig(request_timeout_s=30)))
        files = {"image": ("spots.png", png(), "image/png")}
        question = {"question": "How many spots are there?"}
        tight = client.post("/v1/ask", files=files, data={**question, "deadline_s": BUDGET_S})
        assert tight.status_code == 200, tight.text
        assert tight.json()["verified"] is False and "budget" in tight.json()["unverified_reason"]
        assert chat.calls == 1  # no repair round under the tight budget
        roomy = client.post("/v1/ask", files=files, data={**question, "deadline_s": "20"})
        assert roomy.json()["answer"] == "2" and roomy.json()["verified"] is True
        assert chat.calls == 2  # the repair (the first program's reply is the planner's cache's)


def test_http_refuses_a_deadline_that_is_not_a_positive_number() -> None:
    agent, _ = make_agent([COUNT])
    with agent:
        client = TestClient(create_app(agent, config=ServerConfig(request_timeout_s=30)))
        files = {"image": ("spots.png", png(), "image/png")}
        data = {"question": "How many spots are there?"}
        for bad in ("soon", "0", "-1", "nan"):
            answer = client.post("/v1/ask", files=files, data={**data, "deadline_s": bad})
            assert answer.status_code == 422, bad
        body = {"image_base64": base64.b64encode(png()).decode(), **data}
        assert client.post("/v1/ask", json={**body, "deadline_s": 0}).status_code == 422
        assert client.post("/v1/ask", json={**body, "deadline_s": 5}).json()["answer"] == "2"


def test_the_configured_budget_reaches_the_agent() -> None:
    settings = load_settings(agent={"deadline_s": 7.5}, sandbox={"cpu_seconds": 2})
    with build_agent(settings, FakeListChatModel(responses=[COUNT])) as agent:
        assert agent.deadline_s == 7.5


def test_a_reply_still_being_written_when_the_budget_ends_is_cut() -> None:
    """The budget ends mid-reply: the stream is closed, the fallback answers, unverified, and
    the attempt says why; the cut reply is not cached."""
    agent, _ = make_agent([COUNT] * 3, sleep=0.02, deadline_s=0.5)  # 0.02 s per character
    with agent:
        result = agent.ask(spots_image(), "How many spots are there?")
        again = agent.ask(spots_image(), "How many spots are there?", deadline_s=60)
    planning, deadline, fallback = result.attempts
    assert planning.reason == FailureReason.PLANNING and "time budget" in planning.message
    assert deadline.reason == FailureReason.DEADLINE
    assert "no more of the planner's reply" in (result.unverified_reason or "")
    assert fallback.kind == "fallback" and result.answer is not None and not result.verified
    assert result.timings["total_s"] < len(COUNT) * 0.02  # not read to its end
    # a reply cut by one question's budget is not cached: the next question asks the model
    assert agent.planner.cache.hits == 0 and again.answer == "2" and again.verified
    assert again.attempts[0].reason is None  # its first reply was a whole program
