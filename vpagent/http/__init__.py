"""The HTTP API (FastAPI): ask questions, fetch traces."""

from vpagent.http.app import create_app

__all__ = ["create_app"]
