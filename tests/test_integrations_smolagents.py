"""vpagent inside smolagents: the Tool in a ToolCallingAgent (in-process) and a CodeAgent (by URL
to a running `vpagent serve`), each driven by a scripted model."""

from __future__ import annotations

import base64
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from smolagents import CodeAgent, ToolCallingAgent
from smolagents.models import (
    ChatMessage,
    ChatMessageToolCall,
    ChatMessageToolCallFunction,
    MessageRole,
    Model,
)

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.http_server import serving
from vpagent.agent import Agent
from vpagent.http import create_app
from vpagent.integrations.smolagents import AskImageTool, VpagentError

API_KEY = "k3y"


def spots_base64() -> str:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _text(message: Any) -> str:
    role = message.role if isinstance(message, ChatMessage) else message["role"]
    if role != MessageRole.TOOL_RESPONSE:  # the system prompt has example observations
        return ""
    content = message.content if isinstance(message, ChatMessage) else message["content"]
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content)
    return str(content or "")


def _observation(messages: list[Any]) -> str | None:
    """The last tool observation the agent showed the model, if any."""
    for message in reversed(messages):
        found = re.search(r"Observation:\s*(.*)", _text(message), re.DOTALL)
        if found:
            return found.group(1).strip()
    return None


class ScriptedToolCalls(Model):
    """First calls ask_image with ``arguments``; then final_answer quoting the observation."""

    def __init__(self, arguments: dict[str, str]) -> None:
        super().__init__(model_id="scripted")
        self.arguments = arguments
        self.tool_names: list[str] = []

    def generate(
        self, messages: list[Any], tools_to_call_from: Any = None, **_: Any
    ) -> ChatMessage:  # type: ignore[override]
        self.tool_names = [tool.name for tool in tools_to_call_from or []]
        seen = _observation(messages)
        name, arguments = ("final_answer", {"answer": f"I see {seen}"}) if seen else (
            "ask_image", self.arguments)  # fmt: skip
        call = ChatMessageToolCall(
            id=f"call-{name}", type="function",
            function=ChatMessageToolCallFunction(name=name, arguments=arguments),
        )  # fmt: skip
        return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[call])


class ScriptedCode(Model):
    """Writes one code step calling ask_image on ``image``, then final_answer with its result."""

    def __init__(self, image: str) -> None:
        super().__init__(model_id="scripted-code")
        self.image = image

    def generate(self, messages: list[Any], **_: Any) -> ChatMessage:  # type: ignore[override]
        code = (
            f"count = ask_image(image={self.image!r}, question='How many spots?')\n"
            "final_answer(f'{count} spots')"
        )
        return ChatMessage(
            role=MessageRole.ASSISTANT, content=f"Thought: ask.\n<code>\n{code}\n</code>"
        )


@pytest.fixture
def agent() -> Iterator[Agent]:
    built = make_agent([COUNT])
    yield built
    built.close()


def test_tool_calling_agent_uses_the_in_process_tool(agent: Agent) -> None:
    tool = AskImageTool(agent)
    model = ScriptedToolCalls({"image": spots_base64(), "question": "How many spots?"})
    answer = ToolCallingAgent(tools=[tool], model=model, max_steps=3).run("How many spots?")
    assert "ask_image" in model.tool_names
    assert answer == "I see 2"
    assert tool.last is not None and "find('spot')" in tool.last["program"]
    assert tool.last["trace_id"]


def test_code_agent_asks_a_running_server_by_url(agent: Agent, tmp_path: Path) -> None:
    picture = tmp_path / "spots.png"
    picture.write_bytes(base64.b64decode(spots_base64()))
    with serving(create_app(agent, api_key=API_KEY)) as base:
        tool = AskImageTool(url=base, api_key=API_KEY, allow_dirs=[tmp_path])
        code_agent = CodeAgent(tools=[tool], model=ScriptedCode(str(picture)), max_steps=2)
        assert code_agent.run("How many spots?") == "2 spots"
        assert tool.last is not None and tool.last["trace_id"]
        assert tool.forward(spots_base64(), "How many?", choices=["2", "9"]) == "2"
        trace = httpx.get(
            f"{base}/v1/traces/{tool.last['trace_id']}", headers={"X-API-Key": API_KEY}
        )
        assert trace.json()["question"] == "How many? Choose one of: 2, 9."
        with pytest.raises(VpagentError, match="401"):
            AskImageTool(url=base, api_key="wrong").forward(spots_base64(), "How many?")


def test_refusals(agent: Agent, tmp_path: Path) -> None:
    picture = tmp_path / "spots.png"
    picture.write_bytes(base64.b64decode(spots_base64()))
    with pytest.raises(ValueError, match="file paths are not allowed"):
        AskImageTool(agent).forward(str(picture), "How many?")
    with pytest.raises(ValueError, match="an agent or the url"):
        AskImageTool()
