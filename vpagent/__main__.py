"""`python -m vpagent` is the `vpagent` command."""

from vpagent.cli import app

app()
