"""The agent factory worker processes and Ray actors call: the configured agent, from settings."""

from __future__ import annotations

from vpagent.agent import Agent, build_agent
from vpagent.config import Settings, load_settings
from vpagent.llm.embedded import default_threads


class SettingsAgentFactory:
    """Builds the configured agent; picklable (settings as plain data), so worker processes
    and Ray actors can call it. ``plans=False``: an agent that will only run given programs.

    With ``workers`` > 1 and the embedded LLM on its default threads, each worker's model gets
    its share of the cores (``llm.threads`` = cores // workers): llama.cpp threads that outnumber
    the cores spin against each other and every worker slows down.
    """

    def __init__(self, settings: Settings, *, plans: bool = True, workers: int = 1) -> None:
        self.values = settings.model_dump()
        llm = settings.llm
        if workers > 1 and llm.provider == "embedded" and llm.threads is None:
            self.values["llm"]["threads"] = max(1, default_threads() // workers)
        self.plans = plans

    def __call__(self) -> Agent:
        settings = load_settings(None, **self.values)
        if self.plans:
            return build_agent(settings)
        from vpagent.llm.chat import build_chat_model

        # Only re-running programs: an explicit chat model skips warming the planner's prompt.
        return build_agent(settings, chat_model=build_chat_model(settings.llm))
