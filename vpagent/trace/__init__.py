"""Typed trace records, their storage, and the HTML visual rationale."""

from vpagent.trace.records import ImageInfo, Step, Trace
from vpagent.trace.store import load_trace, save_trace

__all__ = ["ImageInfo", "Step", "Trace", "load_trace", "save_trace"]
