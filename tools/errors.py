"""Errors the vision specialists raise; each message tells the user what to do."""


class ToolError(RuntimeError):
    """Base class of every tool failure."""


class ModelUnavailable(ToolError):
    """Weights or a package are missing; the message names what to install or which path to set."""


class ChecksumMismatch(ModelUnavailable):
    """A weights file does not have the expected sha256."""


class CannotAnswer(ToolError):
    """The backend cannot handle this query (e.g. a stand-in asked about a class it lacks)."""
