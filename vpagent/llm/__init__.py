"""Chat models for the planner: model packs, the embedded llama.cpp server, LangChain clients.

Importing this package is cheap: xllamacpp and LangChain load only when a model is built.
"""

from vpagent.llm.config import LLMConfig

__all__ = ["LLMConfig", "build_chat_model", "complete"]


def __getattr__(name: str) -> object:
    if name in ("build_chat_model", "complete"):
        from vpagent.llm import chat

        return getattr(chat, name)
    raise AttributeError(f"module 'vpagent.llm' has no attribute {name!r}")
