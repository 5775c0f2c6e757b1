"""LLMConfig: defaults per provider, strict keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vpagent.llm import LLMConfig


def test_defaults_are_the_deterministic_embedded_pack() -> None:
    config = LLMConfig()
    assert config.provider == "embedded"
    assert config.resolved_model() == "qwen2.5-coder-1.5b"
    assert (config.temperature, config.seed, config.max_tokens, config.n_ctx) == (0.0, 0, 512, 4096)


def test_provider_defaults() -> None:
    assert LLMConfig(provider="ollama").resolved_model() == "qwen2.5-coder:1.5b"
    assert LLMConfig(provider="ollama").resolved_api_key_env() == ""
    assert LLMConfig(provider="openai").resolved_api_key_env() == "OPENAI_API_KEY"
    assert LLMConfig(provider="openai", api_key_env="").resolved_api_key_env() == ""
    with pytest.raises(ValueError, match=r"llm\.model is required"):
        LLMConfig(provider="openai").resolved_model()


def test_unknown_keys_and_bad_values_are_errors() -> None:
    with pytest.raises(ValidationError, match="api_key"):
        LLMConfig(api_key="sk-secret")  # keys live in the environment, not in config
    with pytest.raises(ValidationError):
        LLMConfig(provider="anthropic")
    with pytest.raises(ValidationError):
        LLMConfig(temperature=-1)


@pytest.mark.parametrize(
    ("parallel", "tools_slot", "slots"), [(1, True, 2), (3, True, 4), (2, False, 2)]
)
def test_the_embedded_server_has_a_slot_for_the_tools_questions(
    monkeypatch: pytest.MonkeyPatch, tmp_path, parallel: int, tools_slot: bool, slots: int
) -> None:
    import vpagent.llm.chat as chat

    built: list[dict[str, object]] = []

    class Recording:
        running = True

        def __init__(self, model_file: object, **options: object) -> None:
            built.append(options)

        def start(self) -> None:
            pass

    model = tmp_path / "m.gguf"
    monkeypatch.setattr(chat, "resolve_model_file", lambda name, progress=None: model)
    monkeypatch.setattr(chat, "EmbeddedLlamaServer", Recording)
    monkeypatch.setattr(chat, "_SERVERS", {})  # the real servers' table is left as it was
    config = LLMConfig(model=str(model), parallel=parallel, tools_slot=tools_slot, n_ctx=1024)
    assert config.slots == slots
    chat.embedded_server(config)
    assert built[-1]["n_parallel"] == slots and built[-1]["n_ctx"] == 1024 * slots
