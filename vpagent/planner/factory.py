"""The planner a configuration describes, with its prompt prefix warmed on the LLM server."""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from vpagent.config import Settings
from vpagent.events import EventCallback, Starting, ignore
from vpagent.planner.examples import ExampleRetriever, fixed_examples, load_banks
from vpagent.planner.planner import Planner
from vpagent.planner.prompt import PROGRAM_END, PROGRAM_OPENING
from vpagent.tools.cache import ResultCache

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def openai_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as OpenAI chat messages (text content only)."""
    return [{"role": _ROLES[m.type], "content": str(m.content)} for m in messages]


VLM_NOTE = (
    "simple_query and caption look at the pixels through a vision-language model: use "
    'simple_query for open questions ("What is the person holding?").'
)


def planner_notes(settings: Settings) -> str:
    """What the configured backends can do, for the prompt (generated, never hand-written)."""
    from vpagent.tools.capabilities import describe
    from vpagent.tools.registry import is_vlm_backed

    notes = [describe(settings.tools)]
    if is_vlm_backed(settings.tools):
        notes.append(VLM_NOTE)
    return "\n".join(note for note in notes if note)


def build_planner(
    settings: Settings,
    chat: BaseChatModel,
    *,
    notes: str | None = None,
    warm: bool = True,
    on_event: EventCallback | None = None,
) -> Planner:
    """A planner for ``settings.agent`` talking to ``chat``.

    With the embedded LLM the reply is prefilled with the function's first line and stops at
    the end of the code block, and (``warm`` and ``llm.prompt_cache``) the static prefix is
    loaded into the server's cache now: restored from disk, or computed once and saved.
    """
    llm, agent = settings.llm, settings.agent
    bank = load_banks(agent.example_banks)
    prefill = llm.provider == "embedded" and agent.prefill_reply
    planner = Planner(
        chat,
        ExampleRetriever(bank),
        model_id=f"{llm.provider}:{llm.model or 'default'}:{llm.temperature}:{llm.seed}",
        fixed=fixed_examples(bank, agent.fixed_examples),
        examples_per_prompt=agent.examples_per_prompt,
        notes=planner_notes(settings) if notes is None else notes,
        spec=agent.api_spec,
        prefill=PROGRAM_OPENING if prefill else None,
        stop=[PROGRAM_END] if prefill else [],
        max_fixes=agent.max_fixes,
        max_tokens=agent.plan_max_tokens,
        stop_repeats=agent.plan_stop_repeats,
        cache=ResultCache(max_entries=1024, directory=agent.plan_cache_dir),
    )
    if warm and llm.provider == "embedded" and llm.prompt_cache:
        _warm(settings, planner, on_event or ignore)
    return planner


def _warm(settings: Settings, planner: Planner, notify: EventCallback) -> None:
    from vpagent.llm.chat import embedded_server
    from vpagent.llm.prefix_cache import warm_prefix

    notify(Starting("loading the planner's prompt prefix (computed once, then kept on disk)"))
    result = warm_prefix(embedded_server(settings.llm), openai_messages(planner.prefix()))
    notify(
        Starting(
            f"planner prompt prefix {result.outcome}: {result.tokens} tokens, "
            f"{result.seconds:.1f} s"
        )
    )
