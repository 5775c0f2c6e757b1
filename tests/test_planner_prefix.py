"""The planner's static prompt prefix, reply prefill and stop, token usage and streaming."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from vpagent.config import load_settings
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.planner.examples import fixed_examples
from vpagent.planner.factory import build_planner
from vpagent.planner.prompt import PROGRAM_END, PROGRAM_OPENING, system_prompt
from vpagent.planner.spec import compact_spec

BODY = "    return str(len(image.find('dog')))"
FENCED = f"```python\ndef execute_command(image):\n{BODY}\n```"


class RecordingChat(BaseChatModel):
    """Answers with ``reply`` (token by token when streamed) and records what it was sent."""

    reply: str = BODY
    calls: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _message(self) -> AIMessage:
        usage = {"input_tokens": 900, "output_tokens": 12, "total_tokens": 912,
                 "input_token_details": {"cache_read": 880}}  # fmt: skip
        return AIMessage(self.reply, usage_metadata=usage)  # type: ignore[arg-type]

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any) -> ChatResult:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        return ChatResult(generations=[ChatGeneration(message=self._message())])

    def _stream(
        self, messages: list[BaseMessage], stop: Any = None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        words = self.reply.split(" ")
        for index, word in enumerate(words):
            last = index == len(words) - 1
            chunk = AIMessageChunk(
                content=word + ("" if last else " "),
                usage_metadata=self._message().usage_metadata if last else None,
            )
            yield ChatGenerationChunk(message=chunk)


@pytest.fixture
def bank() -> list:
    return load_examples()


def _retriever(bank: list) -> ExampleRetriever:
    def embed(texts):  # type: ignore[no-untyped-def]
        import numpy as np

        rows = [[float(len(t) % 7), float("many" in t.lower()), 1.0] for t in texts]
        return np.array([r / np.linalg.norm(r) for r in np.array(rows)])

    return ExampleRetriever(bank, embed)


def test_the_curated_examples_lead_the_prefix_then_one_of_each_kind(bank: list) -> None:
    curated = [e for e in bank if e.prefix]
    assert fixed_examples(bank, 3) == curated[:3]
    chosen = fixed_examples(bank, len(curated) + 4)
    assert chosen[: len(curated)] == curated
    extra_kinds = [e.kind for e in chosen[len(curated) :]]
    assert len(extra_kinds) == 4 and len(set(extra_kinds)) == 4
    everything = fixed_examples(bank, 1000)
    assert len(everything) == len(bank) and set(everything) == set(bank)


def test_the_default_prefix_shows_each_part_of_the_api(bank: list) -> None:
    default = load_settings().agent.fixed_examples
    programs = "".join(e.program for e in fixed_examples(bank, default))
    for call in ("find(", "locate(", "exists(", "count(", "verify_property(", "best_text_match(",
                 "simple_query(", "ocr(", "llm_query(", "left_of(", "next_to("):  # fmt: skip
        assert call in programs, call


def test_two_questions_share_the_whole_prefix(bank: list) -> None:
    chat = RecordingChat(reply=FENCED)
    fixed = fixed_examples(bank, 5)
    planner = Planner(
        chat, _retriever(bank), model_id="t", fixed=fixed, examples_per_prompt=2, notes="Note."
    )
    first = planner.plan("How many dogs are there?").conversation
    second = planner.plan("What color is the car?").conversation
    prefix = planner.prefix()
    assert first[: len(prefix)] == second[: len(prefix)] == prefix
    retrieved = [m.content for m in first[len(prefix) : -1 : 2]]
    assert len(retrieved) == 2
    assert not {f"Question: {e.question}" for e in fixed} & set(retrieved)  # never repeated
    assert first[-1] == HumanMessage("Question: How many dogs are there?")
    assert "Note." in str(prefix[0].content)


def test_prefilled_reply_stops_at_the_end_of_the_block_and_counts_tokens(bank: list) -> None:
    chat = RecordingChat()
    planner = Planner(
        chat, _retriever(bank), model_id="t", prefill=PROGRAM_OPENING, stop=[PROGRAM_END]
    )
    plan = planner.plan("How many dogs are there?")
    sent = chat.calls[0]
    assert sent["stop"] == [PROGRAM_END]
    assert sent["messages"][-1] == AIMessage(PROGRAM_OPENING)  # the server continues it
    assert plan.program == f"def execute_command(image):\n{BODY}\n"
    assert (plan.usage.prompt_tokens, plan.usage.cached_tokens) == (900, 880)
    assert plan.usage.generated_tokens == 12
    assert AIMessage(PROGRAM_OPENING) not in plan.conversation  # kept out of the history


def test_streamed_plan_reports_tokens_as_they_arrive(bank: list) -> None:
    chat = RecordingChat()
    counts: list[int] = []
    planner = Planner(chat, _retriever(bank), model_id="t", prefill=PROGRAM_OPENING)
    plan = planner.plan("How many dogs are there?", on_tokens=counts.append)
    assert counts == list(range(1, len(BODY.split(" ")) + 1))
    assert plan.program.endswith(f"{BODY}\n") and plan.usage.generated_tokens == 12


def test_compact_spec_is_shorter_and_still_names_every_function() -> None:
    from vpagent.tools.image_patch import api_spec

    full, compact = api_spec(), compact_spec()
    assert len(compact) < len(full)
    for name in ("find", "verify_property", "simple_query", "left_of", "llm_query"):
        assert f"def {name}(" in compact
    assert ">>>" not in compact
    assert "def find(" in system_prompt(spec="full") and len(system_prompt(spec="full")) > len(
        system_prompt()
    )


@pytest.mark.parametrize(("provider", "prefilled"), [("embedded", True), ("openai", False)])
def test_only_the_embedded_server_gets_a_prefilled_reply(provider: str, prefilled: bool) -> None:
    settings = load_settings(llm={"provider": provider, "model": "m", "api_key_env": ""})
    planner = build_planner(settings, RecordingChat(), warm=False)
    assert (planner.prefill is not None) is prefilled
    assert len(planner.fixed) == settings.agent.fixed_examples
    assert "find/locate" in planner.notes  # the backends' capabilities reach the prompt


def test_vlm_note_appears_only_with_a_real_vlm() -> None:
    plain = build_planner(load_settings(), RecordingChat(), warm=False)
    vlm_settings = load_settings(vlm={"provider": "ollama", "model": "qwen2.5vl"})
    with_vlm = build_planner(vlm_settings, RecordingChat(), warm=False)
    assert "vision-language model" not in plain.notes
    assert "vision-language model" in with_vlm.notes


def test_extra_example_banks_join_the_built_in_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bank = tmp_path / "bank.toml"
    bank.write_text(
        '[[example]]\nkind = "count"\nquestion = "How many kites fly?"\n'
        "program = '''\ndef execute_command(image):\n"
        "    return str(len(image.find(\"kite\")))\n'''\n"
    )
    settings = load_settings(agent={"example_banks": [str(bank)]})
    planner = build_planner(settings, RecordingChat(), warm=False)
    assert planner.retriever.examples[-1].question == "How many kites fly?"
    assert len(planner.retriever.examples) == len(load_examples()) + 1
    missing = load_settings(agent={"example_banks": [str(tmp_path / "nope.toml")]})
    with pytest.raises(FileNotFoundError, match=r"nope\.toml"):
        build_planner(missing, RecordingChat(), warm=False)
