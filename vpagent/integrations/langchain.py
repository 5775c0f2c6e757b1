"""vpagent as a LangChain tool: :class:`AskImageTool`, a ``BaseTool`` that a LangChain or
LangGraph agent binds (``model.bind_tools([tool])``, ``create_agent(model, [tool])``).

It answers in-process with an :class:`vpagent.Agent` and returns LangChain's content-and-artifact
pair: the answer as the message the model reads, and the program, trace id, timings and full
trace as the artifact the application keeps::

    from vpagent import build_agent, load_settings
    from vpagent.integrations.langchain import AskImageTool

    agent = build_agent(load_settings())
    tool = AskImageTool.around(agent, allow_dirs=["photos/"])
    message = tool.invoke({"type": "tool_call", "id": "1", "name": tool.name,
                           "args": {"image": "photos/two_dogs.jpg", "question": "How many dogs?"}})
    message.content, message.artifact["program"]

Images come as base64, a data URL, or a path inside ``allow_dirs`` (default none), with the
same checks as the MCP server (:mod:`vpagent.mcp_server.inputs`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

from vpagent.agent import Agent
from vpagent.config import ServerConfig
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.result import MAX_QUESTION_CHARS, ResultSummary

DESCRIPTION = (
    "Answer a question about an image. vpagent writes a short Python program over vision tools "
    "(detector, segmenter, matcher, captioner, VQA, OCR, depth, faces), runs it in a sandbox "
    "and returns the answer. Use it for counting, locating, comparing and reading things in a "
    "photo or screenshot."
)


class AskImageInput(BaseModel):
    """The tool's arguments, as the model fills them in."""

    image: str = Field(
        description="The image: base64, a data URL (data:image/png;base64,...), or a file path "
        "inside a folder the application allowed."
    )
    question: str = Field(
        description="A question about the image, e.g. 'How many dogs are there?'",
        max_length=MAX_QUESTION_CHARS,
    )
    choices: list[str] | None = Field(
        None, description="The options of a multiple-choice question; the answer is one of them."
    )


class AskImageTool(BaseTool):
    """Ask vpagent a question about an image; content: the answer, artifact: the program,
    trace id, timings, whether the tools verified it, and the trace."""

    name: str = "ask_image"
    description: str = DESCRIPTION
    args_schema: type[BaseModel] = AskImageInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool = True  # bad input goes back to the model as the tool's message
    agent: Any = Field(exclude=True, description="The vpagent Agent that answers.")
    policy: ImagePolicy = Field(default_factory=ImagePolicy, exclude=True)

    @classmethod
    def around(
        cls,
        agent: Agent,
        *,
        allow_dirs: Iterable[str | Path] = (),
        max_bytes: int = ServerConfig().max_upload_mb * 1024 * 1024,
    ) -> AskImageTool:
        """The tool answering with ``agent``; paths only inside ``allow_dirs``."""
        return cls(agent=agent, policy=ImagePolicy.of(allow_dirs, max_bytes))

    def _run(
        self, image: str, question: str, choices: list[str] | None = None, **_: Any
    ) -> tuple[str, dict[str, Any]]:
        try:
            result = self.agent.ask(self.policy.read(image), question, choices=choices)
        except ValueError as error:  # a refused or unreadable image, an empty question
            raise ToolException(str(error)) from None
        artifact = ResultSummary.of(result).model_dump(mode="json")
        artifact["trace"] = result.trace.model_dump(mode="json") if result.trace else None
        if result.answer is None:
            return f"vpagent found no answer: {result.error}", artifact
        return result.answer, artifact
