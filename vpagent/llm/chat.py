"""LangChain chat models for the planner and ``llm_query``, from one :class:`LLMConfig`.

Every provider goes through ``langchain_openai.ChatOpenAI``: the embedded llama.cpp server,
Ollama and vLLM all speak the OpenAI chat-completions protocol, so there is one client and one
code path. Never call ``get_num_tokens`` on these models: langchain-openai fetches a tiktoken
file from the internet for it.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from vpagent.llm.config import DEFAULT_OLLAMA_URL, LLMConfig
from vpagent.llm.embedded import EmbeddedLlamaServer, default_threads
from vpagent.llm.packs import PACKS, resolve_model_file
from vpagent.offline_env import cache_root

if TYPE_CHECKING:
    from langchain_core.language_models.chat_models import BaseChatModel

NO_KEY = "unused"  # OpenAI-compatible servers without auth still want a non-empty key

_SERVERS: dict[tuple[str, int, int, int, int, str], EmbeddedLlamaServer] = {}
_SERVERS_LOCK = threading.Lock()


class LLMConfigError(ValueError):
    """The LLM configuration cannot produce a chat model; the message says why."""


def _import_chat_openai() -> Any:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as error:
        raise LLMConfigError(
            "chat models need langchain-openai: pip install 'vpagent[llm]'"
        ) from error
    return ChatOpenAI


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_http_clients() -> dict[str, Any]:
    """httpx clients that ignore HTTP(S)_PROXY: loopback traffic must stay on loopback."""
    import httpx

    return {
        "http_client": httpx.Client(trust_env=False),
        "http_async_client": httpx.AsyncClient(trust_env=False),
    }


def _prompt_cache_dir(config: LLMConfig) -> Path | None:
    if not config.prompt_cache:
        return None
    return config.prompt_cache_dir or cache_root() / "prompt-cache"


def embedded_server(config: LLMConfig, *, progress: bool | None = None) -> EmbeddedLlamaServer:
    """The process-wide embedded server for this config's model, started on first use.

    Servers are shared by (model file, n_ctx, threads, seed, slots, prompt cache): building
    several chat models for one model loads it once. Its ``llm.slots`` slots (``parallel``, and
    one for the tools' questions) each get ``n_ctx`` tokens of context: llama.cpp gives a
    request the slot whose cached prompt shares the most with it, so the planner's prefix and
    the tools' prompt start (the scene description's instructions) usually stay cached side by
    side (nothing pins a request to a slot).
    They stop at interpreter exit (or via ``stop()``).
    """
    model = config.resolved_model()
    model_file = resolve_model_file(model, progress=progress)
    threads = config.threads or default_threads()
    slot_dir = _prompt_cache_dir(config)
    key = (
        str(Path(model_file).resolve()),
        config.n_ctx,
        threads,
        config.seed,
        config.slots,
        str(slot_dir),
    )
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None or not server.running:
            alias = model if model in PACKS else Path(model_file).stem
            server = EmbeddedLlamaServer(
                model_file,
                n_ctx=config.n_ctx * config.slots,
                n_parallel=config.slots,
                threads=threads,
                seed=config.seed,
                alias=alias,
                slot_dir=slot_dir,
            )
            server.start()
            _SERVERS[key] = server
    return server


def build_chat_model(
    config: LLMConfig | None = None, *, progress: bool | None = None
) -> BaseChatModel:
    """A LangChain chat model for ``config`` (default: the embedded default pack).

    - ``embedded``: joins/verifies the model pack if needed, starts llama.cpp in this process
      on 127.0.0.1 (shared across calls), and points ``ChatOpenAI`` at it.
    - ``openai``: any OpenAI-compatible server at ``base_url``; the key is read from the
      environment variable named by ``api_key_env`` (empty name: no key).
    - ``ollama``: Ollama's OpenAI-compatible endpoint (default ``http://127.0.0.1:11434/v1``).
    """
    config = config or LLMConfig()
    chat_openai = _import_chat_openai()
    common: dict[str, Any] = {
        "temperature": config.temperature,
        "seed": config.seed,
        "max_tokens": config.max_tokens,
        "timeout": config.timeout_s,
        "max_retries": config.max_retries,
        # the planner streams its replies (to cut one caught in a loop); usage comes at the end
        "stream_usage": True,
    }
    if config.provider == "embedded":
        server = embedded_server(config, progress=progress)
        return chat_openai(
            model=server.alias,
            base_url=server.base_url,
            api_key=server.api_key,
            **common,
            **_loopback_http_clients(),
        )
    if config.provider == "ollama":
        base_url = config.base_url or DEFAULT_OLLAMA_URL
        key_env = config.resolved_api_key_env()
        key = os.environ.get(key_env, "") if key_env else ""
        clients = _loopback_http_clients() if is_loopback_url(base_url) else {}
        return chat_openai(
            model=config.resolved_model(),
            base_url=base_url,
            api_key=key or "ollama",
            **common,
            **clients,
        )
    if config.provider == "openai":
        try:
            model = config.resolved_model()
        except ValueError as error:
            raise LLMConfigError(str(error)) from None
        key = NO_KEY
        key_env = config.resolved_api_key_env()
        if key_env:
            key = os.environ.get(key_env, "")
            if not key:
                raise LLMConfigError(
                    f"the openai provider reads its API key from ${key_env}, which "
                    "is not set; export it, or set llm.api_key_env = '' for a server without "
                    "a key"
                )
        clients = (
            _loopback_http_clients() if config.base_url and is_loopback_url(config.base_url) else {}
        )
        return chat_openai(model=model, base_url=config.base_url, api_key=key, **common, **clients)
    raise LLMConfigError(f"unknown llm.provider {config.provider!r}")  # pragma: no cover


def complete(chat_model: BaseChatModel, prompt: str, *, system: str | None = None) -> str:
    """Ask one question, get the answer's text (for ``llm_query``-style one-shot questions)."""
    from langchain_core.messages import HumanMessage, SystemMessage

    messages: list[Any] = [SystemMessage(system)] if system else []
    messages.append(HumanMessage(prompt))
    return chat_model.invoke(messages).text.strip()


def stop_embedded_servers() -> None:
    """Stop the shared embedded servers (they also stop at interpreter exit)."""
    with _SERVERS_LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for server in servers:
        server.stop()
