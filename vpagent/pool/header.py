"""What a results file was made with: its first line, checked before a run appends to it.

The header names the dataset (path, layout, size and a fingerprint of its questions and
answers) and the settings that decide answers (their digest). Execution knobs (threads, LLM
slots, workers, timeouts, caches, device, server and Ray settings) are recorded as ``runtime``
but not compared: a run may resume with more workers or on another machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from vpagent.config import Settings

HEADER_KEY = "vpagent_run"
RUNTIME_LLM_KEYS = {"threads", "parallel", "timeout_s", "max_retries", "prompt_cache",
                    "prompt_cache_dir"}  # fmt: skip
RUNTIME_KEYS = {"device", "server", "ray", "trace_dir", "cache", "batching"}


class DatasetIdentity(BaseModel):
    """Which dataset a run answered: where it was read, and a fingerprint of its content."""

    path: str
    layout: str
    items: int
    fingerprint: str = Field(description="sha256 of every item's id, question and answers.")


def dataset_identity(path: str, layout: str, rows: Iterable[str]) -> DatasetIdentity:
    """The identity of a dataset whose items are described by ``rows`` (one string each)."""
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(row.encode())
        digest.update(b"\n")
        count += 1
    return DatasetIdentity(path=path, layout=layout, items=count, fingerprint=digest.hexdigest())


def answer_settings(settings: Settings) -> dict[str, Any]:
    """The settings that decide answers (see the module docstring for what is left out)."""
    values = settings.model_dump(mode="json", exclude=RUNTIME_KEYS)
    values["llm"] = {k: v for k, v in values["llm"].items() if k not in RUNTIME_LLM_KEYS}
    values["agent"].pop("plan_cache_dir", None)
    return values


def runtime_settings(settings: Settings) -> dict[str, Any]:
    """The execution knobs, recorded for the reader but never compared."""
    values = settings.model_dump(mode="json", include=RUNTIME_KEYS - {"server"})
    values["llm"] = settings.llm.model_dump(mode="json", include=RUNTIME_LLM_KEYS)
    return values


def _digest(values: Any) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def _flat(values: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(values, dict):
        return {prefix: values}
    flat: dict[str, Any] = {}
    for key, value in values.items():
        flat.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


class RunHeader(BaseModel):
    """The first line of a results file (under the key ``vpagent_run``)."""

    kind: str = Field(description="eval or traces: what each line of the file holds.")
    dataset: DatasetIdentity
    settings: dict[str, Any] = Field(description="The settings that decide answers.")
    options: dict[str, Any] = Field(default_factory=dict, description="e.g. traces' k.")
    runtime: dict[str, Any] = Field(default_factory=dict, description="Not compared.")
    started: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def settings_digest(self) -> str:
        """A short hash of the answer-deciding settings and options."""
        return _digest({"settings": self.settings, "options": self.options})

    def differences(self, other: RunHeader) -> list[str]:
        """What differs between two runs, one phrase each (empty: the same run)."""
        found = []
        if self.kind != other.kind:
            found.append(f"it holds {self.kind} results, not {other.kind}")
        if self.dataset.fingerprint != other.dataset.fingerprint:
            found.append(
                f"dataset {self.dataset.path} ({self.dataset.layout}, {self.dataset.items} items)"
                f" vs {other.dataset.path} ({other.dataset.layout}, {other.dataset.items} items)"
            )
        mine = _flat({"settings": self.settings, "options": self.options})
        theirs = _flat({"settings": other.settings, "options": other.options})
        for key in sorted(mine.keys() | theirs.keys()):
            if mine.get(key) != theirs.get(key):
                found.append(f"{key.removeprefix('settings.')}: {mine.get(key)!r} vs "
                             f"{theirs.get(key)!r}")  # fmt: skip
        return found

    def line(self) -> dict[str, Any]:
        """The header as the file's first record."""
        return {HEADER_KEY: {**self.model_dump(mode="json"), "digest": self.settings_digest}}


def split_header(rows: list[dict[str, Any]]) -> tuple[RunHeader | None, list[dict[str, Any]]]:
    """The header of a file's records (None when it has none) and the item records."""
    if rows and HEADER_KEY in rows[0]:
        values = {k: v for k, v in rows[0][HEADER_KEY].items() if k != "digest"}
        return RunHeader.model_validate(values), rows[1:]
    return None, rows
