"""The `vpagent` command line: `main` holds the top-level commands, the others one group each."""

from vpagent.cli.main import app

__all__ = ["app"]
