"""Which chat model the planner (and ``llm_query``) talks to.

Nested into :class:`vpagent.config.Settings` as ``llm``, so it is set from TOML (``[llm]``) or
from the environment (``VPAGENT_LLM__PROVIDER=openai``, ``VPAGENT_LLM__BASE_URL=...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Provider = Literal["embedded", "openai", "ollama"]

DEFAULT_PACK = "qwen2.5-coder-1.5b"  # 35% vs 23% on the dev set, ~2x slower (README)
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434/v1"
DEFAULT_OLLAMA_MODEL = "qwen2.5-coder:1.5b"


class LLMConfig(BaseModel):
    """A chat model: an embedded GGUF model pack, or any OpenAI-compatible server."""

    model_config = ConfigDict(extra="forbid")

    provider: Provider = Field(
        "embedded",
        description=(
            "embedded: llama.cpp in this process, serving a model pack on 127.0.0.1; "
            "openai: any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, LM Studio); "
            "ollama: Ollama's OpenAI-compatible endpoint."
        ),
    )
    model: str | None = Field(
        None,
        description=(
            "embedded: a model pack name (`vpagent models list`) or a path to a .gguf file; "
            f"otherwise the server's model name. Default: {DEFAULT_PACK!r} for embedded, "
            f"{DEFAULT_OLLAMA_MODEL!r} for ollama; required for openai."
        ),
    )
    base_url: str | None = Field(
        None,
        description=(
            "Server URL ending in /v1 (openai, ollama). Default: OpenAI's own for openai, "
            f"{DEFAULT_OLLAMA_URL} for ollama. Ignored for embedded."
        ),
    )
    api_key_env: str | None = Field(
        None,
        description=(
            "Name of the environment variable holding the API key; the key itself never goes "
            "into a config file. Default: OPENAI_API_KEY for openai, none for ollama. "
            "Empty: the server needs no key."
        ),
    )
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int = Field(0, ge=0, description="Sampling seed, sent with every request.")
    max_tokens: int = Field(512, ge=1, description="Most tokens one answer may have.")
    n_ctx: int = Field(4096, ge=256, description="Context window of the embedded model.")
    threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads of the embedded model (default: usable cores, up to 8).",
    )
    parallel: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Questions planned at once. embedded: llama.cpp slots with continuous batching "
            "(each slot gets its own n_ctx); openai/ollama: concurrent requests to the server "
            "(vLLM batches them; Ollama needs OLLAMA_NUM_PARALLEL as high). Used by eval and "
            "traces workers, Agent.ask_batch and the HTTP server."
        ),
    )
    tools_slot: bool = Field(
        True,
        description=(
            "embedded: one llama.cpp slot more than `parallel`. llama.cpp gives a request the "
            "slot whose cached prompt shares the most with it, so the questions the tools ask "
            "the model (simple_query, llm_query, the fallback's guess) usually keep their "
            "common start cached beside the planner's prefix (n_ctx more KV cache)."
        ),
    )
    prompt_cache: bool = Field(
        True,
        description=(
            "embedded: keep the KV cache of the planner's static prompt prefix on disk, so a "
            "new process restores it instead of re-reading the prefix."
        ),
    )
    prompt_cache_dir: Path | None = Field(
        None, description="Where the prompt cache lives (default: <cache>/prompt-cache)."
    )
    timeout_s: float = Field(300.0, gt=0, description="Seconds one request may take.")
    max_retries: int = Field(1, ge=0, description="Retries of a failed request.")

    @property
    def slots(self) -> int:
        """llama.cpp slots of the embedded server: ``parallel``, and the tools' own one."""
        return self.parallel + int(self.tools_slot)

    def resolved_model(self) -> str:
        """The model name (or pack, or GGUF path) this config selects, defaults applied."""
        if self.model:
            return self.model
        if self.provider == "embedded":
            return DEFAULT_PACK
        if self.provider == "ollama":
            return DEFAULT_OLLAMA_MODEL
        raise ValueError("llm.model is required for the openai provider (the server's model name)")

    def resolved_api_key_env(self) -> str:
        """The environment variable to read the key from; empty when no key is sent."""
        if self.api_key_env is not None:
            return self.api_key_env
        return "OPENAI_API_KEY" if self.provider == "openai" else ""
