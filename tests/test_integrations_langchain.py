"""vpagent inside LangChain: the BaseTool in a tool-calling loop driven by a scripted chat model,
and the MCP server's tools loaded through langchain-mcp-adapters."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp.shared.memory import create_connected_server_and_client_session
from PIL import Image
from pydantic import Field

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from vpagent.agent import Agent
from vpagent.integrations.langchain import AskImageTool
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.mcp_server.server import McpFrontEnd


def spots_base64() -> str:
    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


class ScriptedToolCaller(BaseChatModel):
    """Calls the first bound tool with ``arguments``; once it has the tool's reply, answers in
    a sentence quoting it. Keeps the tool schemas it was bound to."""

    arguments: dict[str, Any]
    bound: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:  # type: ignore[override]
        self.bound = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=self.bound, **kwargs)

    def _generate(self, messages: list[BaseMessage], *_: Any, **__: Any) -> ChatResult:
        replies = [m for m in messages if isinstance(m, ToolMessage)]
        if replies:
            message = AIMessage(content=f"The tool says: {replies[-1].content}")
        else:
            name = self.bound[0]["function"]["name"]
            call = {"name": name, "args": self.arguments, "id": "call-1", "type": "tool_call"}
            message = AIMessage(content="", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=message)])


def run_agent_loop(model: ScriptedToolCaller, tools: list[BaseTool], ask: str) -> list[Any]:
    """LangChain's tool-calling loop: the model asks for tools until it answers in text."""
    bound = model.bind_tools(tools)
    by_name = {tool.name: tool for tool in tools}
    messages: list[BaseMessage] = [HumanMessage(ask)]
    for _ in range(4):
        reply = bound.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return messages
        messages += [by_name[call["name"]].invoke(call) for call in reply.tool_calls]
    pytest.fail("the loop did not end")


@pytest.fixture
def agent() -> Iterator[Agent]:
    built = make_agent([COUNT])
    yield built
    built.close()


def test_a_tool_calling_agent_gets_the_real_answer_and_artifact(agent: Agent) -> None:
    tool = AskImageTool.around(agent)
    model = ScriptedToolCaller(arguments={"image": spots_base64(), "question": "How many spots?"})
    messages = run_agent_loop(model, [tool], "How many spots are in this picture?")
    schema = model.bound[0]["function"]
    assert schema["name"] == "ask_image"
    assert set(schema["parameters"]["required"]) == {"image", "question"}
    tool_reply = messages[2]
    assert isinstance(tool_reply, ToolMessage) and tool_reply.content == "2"
    artifact = tool_reply.artifact
    assert "find('spot')" in artifact["program"] and artifact["verified"] is True
    assert artifact["trace_id"] == artifact["trace"]["id"]
    assert artifact["trace"]["steps"][0]["tool"] == "find"
    assert messages[-1].content == "The tool says: 2"


def test_paths_need_an_allowed_folder_and_errors_reach_the_model(
    agent: Agent, tmp_path: Path
) -> None:
    picture = tmp_path / "spots.png"
    picture.write_bytes(base64.b64decode(spots_base64()))
    call = {"name": "ask_image", "id": "c", "type": "tool_call",
            "args": {"image": str(picture), "question": "How many spots?"}}  # fmt: skip
    refused = AskImageTool.around(agent).invoke(call)
    assert refused.status == "error" and "file paths are not allowed" in refused.content
    allowed = AskImageTool.around(agent, allow_dirs=[tmp_path]).invoke(call)
    assert allowed.content == "2" and allowed.status == "success"
    call["args"]["choices"] = ["2", "9"]
    assert AskImageTool.around(agent, allow_dirs=[tmp_path]).invoke(call).content == "2"
    prompt = str(agent.planner.chat_model.last_prompt[-1].content)  # type: ignore[attr-defined]
    assert "Choose one of: 2, 9." in prompt


def test_async_invocation(agent: Agent) -> None:
    tool = AskImageTool.around(agent)

    async def main() -> Any:
        return await tool.ainvoke(
            {"name": "ask_image", "id": "c", "type": "tool_call",
             "args": {"image": spots_base64(), "question": "How many spots?"}}
        )  # fmt: skip

    assert anyio.run(main).content == "2"


def test_langchain_mcp_adapters_load_and_call_the_mcp_tools(agent: Agent) -> None:
    front = McpFrontEnd(agent, ImagePolicy())

    async def main() -> None:
        async with create_connected_server_and_client_session(front.server) as session:
            tools = {tool.name: tool for tool in await load_mcp_tools(session)}
            assert set(tools) == {"ask_image", "run_program", "describe_backends"}
            ask = tools["ask_image"]
            assert set(ask.args) >= {"image", "question"}
            reply = await ask.ainvoke(
                {"name": "ask_image", "id": "c", "type": "tool_call",
                 "args": {"image": spots_base64(), "question": "How many spots?"}}
            )  # fmt: skip
            kinds = [block["type"] for block in reply.content]
            assert kinds[:2] == ["text", "image"] and '"answer": "2"' in reply.content[0]["text"]
            assert reply.artifact["structured_content"]["answer"] == "2"
            refused = await ask.ainvoke(
                {"name": "ask_image", "id": "d", "type": "tool_call",
                 "args": {"image": "/etc/passwd", "question": "How many?"}}
            )  # fmt: skip
            assert refused.status == "error"
            assert "file paths are not allowed" in refused.content[0]["text"]

    try:
        anyio.run(main)
    finally:
        front.close()
