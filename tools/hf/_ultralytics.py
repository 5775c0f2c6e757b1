"""What the ultralytics backends share: an offline import, device strings, weights checks."""

from __future__ import annotations

from typing import Any

from vpagent.offline_env import prepare_ultralytics_config_dir
from vpagent.tools.hf._base import require


def import_ultralytics(what: str) -> Any:
    """``ultralytics`` with its plotting font pre-placed, so nothing is fetched on import or use."""
    prepare_ultralytics_config_dir()
    return require("ultralytics", what)


def ultralytics_device(device: str) -> str:
    """torch device names to the ones ultralytics' ``select_device`` takes ("cpu", "0", "1")."""
    if device.startswith("cuda"):
        return device.split(":", 1)[1] if ":" in device else "0"
    return device
