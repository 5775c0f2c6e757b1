"""vpagent: visual programming agents with a sandboxed executor and visual traces.

The public API, imported on first use so that ``import vpagent.tools`` (or the sandbox's child
process) does not load the agent::

    from vpagent import build_agent, load_settings

    with build_agent(load_settings()) as agent:
        result = agent.ask("photo.jpg", "How many dogs are there?")
"""

from __future__ import annotations

import importlib
from typing import Any

from vpagent.offline_env import apply_offline_defaults

apply_offline_defaults()

__version__ = "0.1.0"

_PUBLIC = {
    "Agent": "vpagent.agent",
    "build_agent": "vpagent.agent",
    "Result": "vpagent.result",
    "Settings": "vpagent.config",
    "load_settings": "vpagent.config",
}
__all__ = [*_PUBLIC, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'vpagent' has no attribute {name!r}")
