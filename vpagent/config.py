"""Typed settings: a TOML file plus ``VPAGENT_*`` environment variables.

Precedence, highest first: keyword arguments, environment (``VPAGENT_PROFILE``,
``VPAGENT_TOOLS__DETECTOR__BACKEND``...), the TOML file (``--config``, ``VPAGENT_CONFIG`` or
``./vpagent.toml``), then the profile's defaults. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vpagent.llm.config import LLMConfig
from vpagent.sandbox.limits import SandboxLimits

ROLES = ("detector", "segmenter", "matcher", "captioner", "vqa", "ocr", "depth", "faces")
Profile = Literal["offline", "hf"]

PROFILE_TOOLS: dict[str, dict[str, dict[str, Any]]] = {
    "offline": {
        "detector": {"backend": "ssd-coco"},
        "segmenter": {"backend": "grabcut"},
        "matcher": {"backend": "classifier-minilm"},
        "captioner": {"backend": "scene-description"},
        "vqa": {"backend": "scene-description-llm"},
        "ocr": {"backend": "rapidocr"},
        "depth": {"backend": "vertical-position"},
        "faces": {"backend": "haar"},
    },
    "hf": {
        "detector": {"backend": "owlvit", "model": "google/owlv2-base-patch16-ensemble"},
        "segmenter": {"backend": "sam-hf", "model": "facebook/sam-vit-base"},
        "matcher": {"backend": "clip", "model": "openai/clip-vit-large-patch14"},
        "captioner": {"backend": "blip", "model": "Salesforce/blip-image-captioning-large"},
        "vqa": {"backend": "blip-vqa", "model": "Salesforce/blip-vqa-capfilt-large"},
        "ocr": {"backend": "rapidocr"},
        "depth": {"backend": "dpt", "model": "Intel/dpt-large"},
        "faces": {"backend": "haar"},
    },
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names each bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RoleConfig(_Strict):
    """Which backend serves a role, and its model (hub id or local folder) and options."""

    backend: str
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class ToolsConfig(_Strict):
    detector: RoleConfig
    segmenter: RoleConfig
    matcher: RoleConfig
    captioner: RoleConfig
    vqa: RoleConfig
    ocr: RoleConfig
    depth: RoleConfig
    faces: RoleConfig


class CacheConfig(_Strict):
    """Tool-result cache keyed by (image content hash, tool, arguments)."""

    max_entries: int = Field(2048, ge=0)
    directory: Path | None = Field(None, description="Also keep results on disk here.")


class BatchingConfig(_Strict):
    """Calls from concurrent programs are collected for ``window_ms`` into one batch."""

    window_ms: float = Field(5.0, ge=0)
    max_batch: int = Field(8, ge=1)


class AgentConfig(_Strict):
    """How the agent plans: examples per prompt, fixes, repairs, self-consistency."""

    examples_per_prompt: int = Field(6, ge=0, le=20)
    max_fixes: int = Field(2, ge=0, description="Replies sent back for holding no valid program.")
    max_repairs: int = Field(2, ge=0, description="New programs after one fails at run time.")
    samples: int = Field(1, ge=1, le=9, description="Programs voted on (self-consistency).")
    plan_cache_dir: Path | None = None


class ServerConfig(_Strict):
    """`vpagent serve` and `vpagent ui`: loopback by default."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    ui_port: int = Field(7860, ge=0, le=65535)
    max_upload_mb: int = Field(20, ge=1, le=1024)
    api_key_env: str | None = Field(None, description="Env var holding the HTTP API key.")


class Settings(BaseSettings):
    """All of vpagent's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="VPAGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    profile: Profile = "offline"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    tools: ToolsConfig
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    trace_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile", "offline")
        defaults = PROFILE_TOOLS.get(profile, PROFILE_TOOLS["offline"])
        tools = dict(data.get("tools") or {})
        for role, default in defaults.items():
            given = tools.get(role)
            if given is None:
                tools[role] = dict(default)
            elif isinstance(given, dict) and "backend" not in given:
                tools[role] = {**default, **given}
        return {**data, "tools": tools}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _config_file() -> Path | None:
    if os.environ.get("VPAGENT_CONFIG"):
        return Path(os.environ["VPAGENT_CONFIG"])
    local = Path("vpagent.toml")
    return local if local.is_file() else None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"  {key}: {item['msg']}")
    return "invalid vpagent configuration:\n" + "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; raise :class:`ConfigError` naming each bad key."""
    config_file = config_file or _config_file()
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")
    settings_cls = type(
        "Settings",
        (Settings,),
        {"model_config": {**Settings.model_config, "toml_file": config_file}},
    )
    try:
        return settings_cls(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # e.g. malformed TOML or an unparsable env value
        raise ConfigError(f"invalid vpagent configuration: {error}") from None
