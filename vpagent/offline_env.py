"""Network-silencing defaults applied when vpagent is imported.

vpagent must never open a connection off loopback: no telemetry, no DNS lookups, no hub
downloads. Several libraries we use do all three by default; these settings turn them off.
They are set with ``setdefault`` so a user can still opt back in from the environment.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from platformdirs import user_cache_dir

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
    "ANONYMIZED_TELEMETRY": "False",
}


def cache_root() -> Path:
    """The folder vpagent writes caches and joined model files to (``VPAGENT_CACHE_DIR``)."""
    return Path(os.environ.get("VPAGENT_CACHE_DIR") or user_cache_dir("vpagent"))


def prepare_ultralytics_config_dir() -> None:
    """Pre-place the plotting font in ``YOLO_CONFIG_DIR`` so ultralytics never fetches it.

    Call before importing ultralytics; :func:`apply_offline_defaults` must have run.
    """
    font = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        spec = importlib.util.find_spec("matplotlib")  # ships with ultralytics
        if spec is not None and spec.submodule_search_locations:
            package_dir = Path(next(iter(spec.submodule_search_locations)))
            source = package_dir / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
            font.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, font)


def apply_offline_defaults() -> None:
    """Set the environment variables that keep every library on loopback."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(cache_root() / "ultralytics"))
