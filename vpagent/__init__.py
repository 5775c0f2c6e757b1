"""vpagent: visual programming agents with a sandboxed executor and visual traces."""

from vpagent.offline_env import apply_offline_defaults

apply_offline_defaults()

__version__ = "0.1.0"
