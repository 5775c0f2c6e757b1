"""The toolbox's own configuration: which backend serves each role, the result cache,
batching, the device. ``vpagent.config.Settings`` holds these and hands the server a
:class:`ToolboxConfig`; nothing in the tools reads the whole Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class ToolboxConfig(_Strict):
    """Everything a Toolbox reads. ``llm_identity`` names the LLM the stand-in tools ask
    (provider, model, base_url): their results depend on it, so it scopes the result cache."""

    tools: ToolsConfig
    cache: CacheConfig = Field(default_factory=CacheConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    device: str = "auto"
    llm_identity: dict[str, Any] = Field(default_factory=dict)
