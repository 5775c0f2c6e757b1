"""A planner reply caught in a loop is cut as soon as it repeats itself, and sent back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tests.fixtures.agents import KeywordEmbed
from vpagent.planner import (
    CaughtInLoop,
    ExampleRetriever,
    Planner,
    PlanningFailed,
    load_examples,
)
from vpagent.planner.repetition import MAX_UNIT_CHARS, MIN_SPAN_CHARS, repeated_unit

GOOD = "def execute_command(image):\n    return str(len(image.find('dog')))\n"
# The reply the embedded model wrote for a coco128 validation question, until its token limit.
LOOP = (
    "```python\ndef execute_command(image):\n"
    '    bat = image.locate("baseball bat")\n'
    '    return bat.best_text_match(["baseball bat", ' + '"baseball bat", ' * 120
)


def test_the_observed_loop_is_spotted() -> None:
    assert repeated_unit(LOOP, 4) in {'"baseball bat", ', ' "baseball bat",'}


@pytest.mark.parametrize(
    "text",
    [
        "    x = f(g(h(k(1))))",  # a short piece repeated a few times is real code
        "    return [0, 0, 0, 0]",
        "    slots = [None, None, None, None, None, None, None]",
        "    # " + "-" * 90,  # a rule, however long
        "def execute_command(image):\n" + " " * 80,  # indentation, not a loop
        "    a = 1\n    b = 2\n    c = 3\n    d = 4\n",
    ],
)
def test_code_that_only_looks_repetitive_is_not_a_loop(text: str) -> None:
    assert repeated_unit(text, 4) is None


def test_no_example_program_is_ever_cut_while_it_is_written() -> None:
    """Every prefix of every program in the bank (what a stream shows) passes."""
    for example in load_examples():
        written = "```python\n" + example.program + "```"
        for end in range(1, len(written) + 1):
            assert repeated_unit(written[:end], 4) is None, (example.question, written[:end])


@given(
    lead=st.text(max_size=40),
    unit=st.text(min_size=2, max_size=MAX_UNIT_CHARS).filter(
        lambda piece: bool(piece.strip()) and len(set(piece)) > 1
    ),
    extra=st.integers(0, 3),
)
def test_any_piece_repeated_enough_is_spotted(lead: str, unit: str, extra: int) -> None:
    repeats = max(4, -(-MIN_SPAN_CHARS // len(unit))) + extra
    found = repeated_unit(lead + unit * repeats, 4)
    assert found is not None
    assert (lead + unit * repeats).endswith(found * 4)


def test_times_below_two_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        repeated_unit("abc", 1)
    with pytest.raises(ValueError, match="at least 2"):
        Planner(FakeListChatModel(responses=[GOOD]), None, model_id="fake", stop_repeats=1)  # type: ignore[arg-type]


@pytest.fixture
def retriever() -> ExampleRetriever:
    return ExampleRetriever(load_examples(), KeywordEmbed(["many", "color", "right"]))


def test_a_looping_reply_is_cut_short_and_ends_planning(retriever: ExampleRetriever) -> None:
    """Sent back, a greedy model loops again at the same place: planning stops at once."""
    model = FakeListChatModel(responses=[LOOP, f"```python\n{GOOD}```"])
    planner = Planner(model, retriever, model_id="fake", stop_repeats=4)
    with pytest.raises(CaughtInLoop, match="again and again") as failure:
        planner.plan("What is to the right of the baseball bat?")
    assert model.i == 1  # no second round
    assert failure.value.unit in {'"baseball bat", ', ' "baseball bat",', 'baseball bat", "'}
    (cut,) = failure.value.replies
    assert "baseball bat" in (cut.problem or "") and cut.program is None
    # the stream was closed after the fourth repeat, not read to the end
    assert len(cut.reply) < len(LOOP) // 4
    assert cut.reply.count('"baseball bat", ') <= 6


def test_without_the_limit_the_loop_is_read_to_its_end(retriever: ExampleRetriever) -> None:
    model = FakeListChatModel(responses=[LOOP, f"```python\n{GOOD}```"])
    planner = Planner(model, retriever, model_id="fake")
    plan = planner.plan("What is to the right of the baseball bat?")
    assert plan.replies[0].reply == LOOP


def test_the_repeat_limit_is_part_of_the_plan_cache_key(retriever: ExampleRetriever) -> None:
    """A reply cached with the loop read to its end is not reused by a planner that cuts it."""
    reading = Planner(FakeListChatModel(responses=[LOOP, GOOD]), retriever, model_id="fake")
    reading.plan("What is to the right of the baseball bat?")  # the loop, then a fix
    cutting = Planner(
        FakeListChatModel(responses=[LOOP, GOOD]),
        retriever,
        model_id="fake",
        stop_repeats=4,
        cache=reading.cache,
    )
    misses = cutting.cache.misses
    with pytest.raises(PlanningFailed):
        cutting.plan("What is to the right of the baseball bat?")
    assert cutting.cache.misses > misses


def test_the_setting_turns_the_cut_off_with_zero_and_refuses_one() -> None:
    from vpagent.config import ConfigError, load_settings
    from vpagent.planner.factory import build_planner

    chat = FakeListChatModel(responses=[GOOD])
    assert build_planner(load_settings(), chat, notes="", warm=False).stop_repeats == 4
    off = load_settings(agent={"plan_stop_repeats": 0})
    assert build_planner(off, chat, notes="", warm=False).stop_repeats == 0
    with pytest.raises(ConfigError, match="plan_stop_repeats"):
        load_settings(agent={"plan_stop_repeats": 1})
