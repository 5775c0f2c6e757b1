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
