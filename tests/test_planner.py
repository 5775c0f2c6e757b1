"""The planner: extraction, the repair loop with a scripted chat model, retrieval, caching."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from tests.fixtures.agents import KeywordEmbed
from vpagent.planner import (
    ExampleRetriever,
    NoProgramFound,
    Planner,
    PlanningFailed,
    extract_program,
    load_examples,
)

GOOD = "def execute_command(image):\n    return str(len(image.find('dog')))\n"


@pytest.mark.parametrize(
    "reply",
    [
        f"```python\n{GOOD}```",
        f"Sure, here it is:\n```python\n{GOOD}```\nThis counts the dogs.",
        f"```\n{GOOD}```",
        f"```python\ndef helper():\n    pass\n```\nand\n```python\n{GOOD}```",
        GOOD,
        f"Here is the program:\n{GOOD}It counts the dogs.",
        f"```python\n{GOOD}",  # unterminated fence
    ],
)
def test_extracts_the_entry_point(reply: str) -> None:
    assert extract_program(reply).strip() == GOOD.strip()


def test_keeps_imports_and_helpers_above_the_entry_point() -> None:
    reply = (
        "import math\ndef half(x):\n    return x / 2\n\n"
        "def execute_command(image):\n    return half(2)\n"
    )
    program = extract_program(f"Program:\n{reply}Done.")
    assert program.startswith("import math\ndef half(x):")
    assert program.rstrip().endswith("return half(2)")


@pytest.mark.parametrize("reply", ["There are 2 dogs.", "", "```python\nprint('hi')\n```"])
def test_prose_is_not_a_program(reply: str) -> None:
    with pytest.raises(NoProgramFound):
        extract_program(reply)


@pytest.fixture
def retriever() -> ExampleRetriever:
    return ExampleRetriever(load_examples(), KeywordEmbed(["many", "color", "written", "left"]))


def _planner(
    responses: list[str], retriever: ExampleRetriever, **kwargs
) -> tuple[Planner, FakeListChatModel]:  # type: ignore[no-untyped-def]
    model = FakeListChatModel(responses=responses)
    return Planner(model, retriever, model_id="fake", **kwargs), model


def test_repair_loop_recovers_from_prose_then_broken_code(retriever: ExampleRetriever) -> None:
    planner, _ = _planner(
        [
            "I think there are two dogs in the picture.",
            "```python\nimport os\ndef execute_command(image):\n    return os.name\n```",
            f"```python\n{GOOD}```",
        ],
        retriever,
    )
    plan = planner.plan("How many dogs are there?")
    assert plan.program == GOOD
    assert [a.problem is None for a in plan.replies] == [False, False, True]
    assert "contains no program" in (plan.replies[0].problem or "")
    assert "import of 'os' is not allowed" in (plan.replies[1].problem or "")
    feedback = [m.content for m in plan.conversation if isinstance(m, HumanMessage)]
    assert any("import of 'os'" in str(text) for text in feedback)


def test_gives_up_after_max_fixes(retriever: ExampleRetriever) -> None:
    planner, _ = _planner(["no code", "still no code", "nope"], retriever, max_fixes=1)
    with pytest.raises(PlanningFailed) as failure:
        planner.plan("How many dogs are there?")
    assert len(failure.value.replies) == 2


def test_runtime_repair_continues_the_conversation(retriever: ExampleRetriever) -> None:
    fixed = "def execute_command(image):\n    return 'right'\n"
    planner, _ = _planner([f"```python\n{GOOD}```", f"```python\n{fixed}```"], retriever)
    plan = planner.repair(planner.plan("Is it left?"), "runtime at line 2: IndexError")
    assert plan.program == fixed
    assert "IndexError" in str(plan.conversation[-1].content)
    assert isinstance(plan.conversation[0], SystemMessage)


def test_prompt_holds_api_spec_and_retrieved_examples(retriever: ExampleRetriever) -> None:
    planner, _ = _planner([f"```python\n{GOOD}```"], retriever, examples_per_prompt=3)
    plan = planner.plan("What color is the car?")
    system = str(plan.conversation[0].content)
    assert "def find(self, object_name: str)" in system and "llm_query" in system
    shown = [str(m.content) for m in plan.conversation[1:-1:2]]
    assert len(shown) == 3 and all("color" in q.lower() for q in shown)
    assert str(plan.conversation[-1].content) == "Question: What color is the car?"


def test_plans_are_cached_by_model_and_prompt(retriever: ExampleRetriever) -> None:
    planner, model = _planner([f"```python\n{GOOD}```", "different"], retriever)
    first = planner.plan("How many dogs are there?")
    second = planner.plan("How many dogs are there?")
    assert first.program == second.program
    assert model.i == 1  # the second plan came from the cache


def test_empty_question_is_an_error(retriever: ExampleRetriever) -> None:
    planner, _ = _planner([GOOD], retriever)
    with pytest.raises(ValueError, match="empty"):
        planner.plan("   ")


@pytest.mark.slow
def test_minilm_retrieval_picks_relevant_examples() -> None:
    retriever = ExampleRetriever(load_examples())
    kinds = [e.kind for e in retriever.top("How many cats are sleeping on the bed?", 3)]
    assert kinds.count("count") >= 2
    ocr = [e.kind for e in retriever.top("What is the text on the billboard?", 2)]
    assert "ocr" in ocr


def test_a_planner_reply_is_capped_at_plan_max_tokens(retriever: ExampleRetriever) -> None:
    """The token limit of a planner reply reaches the server (so a reply that repeats itself
    is cut there), from `agent.plan_max_tokens` through the real OpenAI client."""
    from langchain_openai import ChatOpenAI

    from tests.fixtures.scripted_openai import ScriptedOpenAI
    from vpagent.config import load_settings
    from vpagent.planner.factory import build_planner

    with ScriptedOpenAI(f"```python\n{GOOD}```") as server:
        chat = ChatOpenAI(
            model="scripted", base_url=server.base_url, api_key="none", max_tokens=512
        )
        settings = load_settings(agent={"plan_max_tokens": 64, "prefill_reply": False})
        planner = build_planner(settings, chat, notes="", warm=False)
        assert planner.plan("How many dogs are there?").program == GOOD
        unlimited = build_planner(
            load_settings(agent={"plan_max_tokens": None, "prefill_reply": False}),
            chat,
            notes="",
            warm=False,
        )
        unlimited.plan("How many cats are there?")
    assert server.bodies[0]["max_completion_tokens"] == 64  # the planner's own limit
    assert server.bodies[1]["max_completion_tokens"] == 512  # the model's limit


def test_the_token_limit_is_part_of_the_plan_cache_key(retriever: ExampleRetriever) -> None:
    """A cached reply made under another token limit is not reused."""
    planner, _ = _planner([f"```python\n{GOOD}```"] * 2, retriever, max_tokens=64)
    planner.plan("How many dogs are there?")
    other, _ = _planner([f"```python\n{GOOD}```"], retriever, max_tokens=128)
    other.cache = planner.cache
    other.plan("How many dogs are there?")
    assert other.cache.hits == 0
