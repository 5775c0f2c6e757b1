"""vpagent as a smolagents tool: :class:`AskImageTool`, for a ``CodeAgent`` or a
``ToolCallingAgent``. It answers in-process with an :class:`vpagent.Agent`, or asks a running
``vpagent serve`` by URL (``POST /v1/ask``)::

    from smolagents import CodeAgent
    from vpagent.integrations.smolagents import AskImageTool

    tool = AskImageTool(url="http://127.0.0.1:8000", allow_dirs=["photos/"])
    CodeAgent(tools=[tool], model=model).run("How many dogs are in photos/two_dogs.jpg?")

The tool returns the answer; the last answer's program, trace id and timings stay in
:attr:`AskImageTool.last` for the application. Images come as base64, a data URL, or a path
inside ``allow_dirs`` (default none), with the MCP server's checks
(:mod:`vpagent.mcp_server.inputs`).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from smolagents import Tool

from vpagent.agent import Agent
from vpagent.config import ServerConfig
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.result import ResultSummary

DEFAULT_MAX_BYTES = ServerConfig().max_upload_mb * 1024 * 1024


class VpagentError(RuntimeError):
    """vpagent could not answer: a refused image, a busy server, or no answer found."""


class AskImageTool(Tool):  # type: ignore[misc]  # smolagents ships no type hints
    """Ask vpagent a question about an image; returns the answer as text."""

    name = "ask_image"
    description = (
        "Answers a question about an image. vpagent writes a short Python program over vision "
        "tools (detector, segmenter, matcher, captioner, VQA, OCR, depth, faces), runs it in a "
        "sandbox and returns the answer. Use it for counting, locating, comparing and reading "
        "things in a photo or screenshot."
    )
    inputs = {  # noqa: RUF012 (smolagents reads these class attributes)
        "image": {
            "type": "string",
            "description": "The image: base64, a data URL (data:image/png;base64,...), or a "
            "file path inside a folder the application allowed.",
        },
        "question": {
            "type": "string",
            "description": "A question about the image, e.g. 'How many dogs are there?'",
        },
        "choices": {
            "type": "array",
            "description": "The options of a multiple-choice question; the answer is one.",
            "nullable": True,
        },
    }
    output_type = "string"

    def __init__(
        self,
        agent: Agent | None = None,
        *,
        url: str | None = None,
        api_key: str | None = None,
        allow_dirs: Iterable[str | Path] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_s: float = 300.0,
    ) -> None:
        """Answer with ``agent`` in this process, or with the ``vpagent serve`` at ``url``
        (``api_key``: its ``server.api_key_env`` key, if it has one)."""
        if (agent is None) == (url is None):
            raise ValueError("give AskImageTool an agent or the url of a vpagent server")
        super().__init__()
        self.agent = agent
        self.url = url.rstrip("/") if url else None
        self.api_key = api_key
        self.policy = ImagePolicy.of(allow_dirs, max_bytes)
        self.timeout_s = timeout_s
        self.last: dict[str, Any] | None = None

    def forward(self, image: str, question: str, choices: list[str] | None = None) -> str:
        data = self.policy.read(image)
        if self.agent is not None:
            summary = self._ask_here(data, question, choices)
        else:
            summary = self._ask_server(data, question, choices)
        self.last = summary
        if summary.get("answer") is None:
            raise VpagentError(f"vpagent found no answer: {summary.get('error')}")
        return str(summary["answer"])

    def _ask_here(self, data: bytes, question: str, choices: list[str] | None) -> dict[str, Any]:
        assert self.agent is not None
        result = self.agent.ask(data, question, choices=choices)
        return ResultSummary.of(result).model_dump(mode="json")

    def _ask_server(self, data: bytes, question: str, choices: list[str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "image_base64": base64.b64encode(data).decode(),
            "question": question,
        }
        if choices:
            body["choices"] = choices
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        try:
            response = httpx.post(
                f"{self.url}/v1/ask", json=body, headers=headers, timeout=self.timeout_s
            )
        except httpx.HTTPError as error:
            raise VpagentError(f"cannot reach vpagent at {self.url}: {error}") from None
        if response.status_code != 200:
            retry = response.headers.get("Retry-After")
            detail = _detail(response) + (f" (retry after {retry} s)" if retry else "")
            raise VpagentError(f"vpagent answered {response.status_code}: {detail}")
        summary: dict[str, Any] = response.json()
        return summary


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text[:500]
