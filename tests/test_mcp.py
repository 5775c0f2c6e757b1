"""The MCP server through the official `mcp` client: in memory against a scripted agent, and
against a live `vpagent mcp` process over stdio and over streamable HTTP on loopback."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import McpError
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent
from PIL import Image

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.gated_agent import GatedAgent
from tests.fixtures.scripted_openai import ScriptedOpenAI
from tests.fixtures.sockets import SocketWatch
from vpagent.config import ServerConfig
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.mcp_server.server import McpFrontEnd

DOGS = "```python\ndef execute_command(image):\n    return str(len(image.find('dog')))\n```"
Session = Callable[[ClientSession], Awaitable[None]]


def png_bytes(pixels: Any = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(spots_image() if pixels is None else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def in_memory(front: McpFrontEnd, check: Session) -> None:
    async def main() -> None:
        async with create_connected_server_and_client_session(front.server) as session:
            await check(session)

    anyio.run(main)


def error_text(result: CallToolResult) -> str:
    assert result.isError, result
    (content,) = result.content
    assert isinstance(content, TextContent)
    return content.text


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """An allowed folder with an image, a text file, and a symlink to a picture outside it."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "spots.png").write_bytes(png_bytes())
    (allowed / "notes.txt").write_text("not a picture")
    (allowed / "fake.png").write_text("not a picture either")
    (allowed / "big.png").write_bytes(png_bytes() + b"\0" * 4096)
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.png").write_bytes(png_bytes())
    (allowed / "link.png").symlink_to(outside / "secret.png")
    return allowed


@pytest.fixture
def front(photos: Path) -> Any:
    agent = make_agent([COUNT])
    policy = ImagePolicy.of([photos], max_bytes=len(png_bytes()) + 1024)
    served = McpFrontEnd(agent, policy)
    yield served
    served.close()
    agent.close()


def test_tools_have_schemas_a_model_can_read(front: McpFrontEnd) -> None:
    async def check(session: ClientSession) -> None:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == {"ask_image", "run_program", "describe_backends"}
        ask = tools["ask_image"]
        assert set(ask.inputSchema["required"]) == {"image", "question"}
        assert "--allow-dir" in ask.inputSchema["properties"]["image"]["description"]
        assert "student" in json.dumps(ask.inputSchema["properties"]["mode"])
        assert "visual rationale" in (ask.description or "")
        assert {"answer", "answered_by", "verified", "program", "timings", "trace_id"} <= set(
            (ask.outputSchema or {})["properties"]
        )
        assert set(tools["run_program"].inputSchema["required"]) == {"image", "program"}
        templates = (await session.list_resource_templates()).resourceTemplates
        assert {t.uriTemplate for t in templates} == {
            "vpagent://traces/{trace_id}",
            "vpagent://traces/{trace_id}/rationale.png",
        }

    in_memory(front, check)


def test_ask_image_answers_with_program_rationale_png_and_trace_resource(
    front: McpFrontEnd,
) -> None:
    async def check(session: ClientSession) -> None:
        heard: list[str] = []

        async def progress(_done: float, _total: float | None, message: str | None) -> None:
            heard.append(message or "")

        result = await session.call_tool(
            "ask_image", {"image": b64(png_bytes()), "question": "How many spots?"},
            progress_callback=progress,
        )  # fmt: skip
        assert not result.isError, result
        answer = result.structuredContent or {}
        assert answer["answer"] == "2" and answer["verified"] is True
        assert answer["answered_by"] == "program" and "find('spot')" in answer["program"]
        assert answer["timings"]["total_s"] > 0
        text, picture, link = result.content
        assert isinstance(text, TextContent) and json.loads(text.text)["answer"] == "2"
        assert isinstance(picture, ImageContent) and picture.mimeType == "image/png"
        drawn = Image.open(io.BytesIO(base64.b64decode(picture.data)))
        assert drawn.format == "PNG" and drawn.width >= 80
        assert isinstance(link, ResourceLink)
        assert str(link.uri) == f"vpagent://traces/{answer['trace_id']}"
        trace = json.loads((await session.read_resource(link.uri)).contents[0].text)  # type: ignore[union-attr]
        assert trace["question"] == "How many spots?" and trace["steps"][0]["tool"] == "find"
        png = (await session.read_resource(f"{link.uri}/rationale.png")).contents[0]
        assert base64.b64decode(png.blob) == base64.b64decode(picture.data)  # type: ignore[union-attr]
        assert any("Planning" in m or "plan" in m.lower() for m in heard), heard

    in_memory(front, check)


def test_images_as_data_urls_and_allowed_paths(front: McpFrontEnd, photos: Path) -> None:
    async def check(session: ClientSession) -> None:
        for image in (f"data:image/png;base64,{b64(png_bytes())}", str(photos / "spots.png")):
            result = await session.call_tool("ask_image", {"image": image, "question": "How many?"})
            assert (result.structuredContent or {}).get("answer") == "2", result

    in_memory(front, check)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        ("{outside}/secret.png", "outside the allowed folders"),
        ("{allowed}/link.png", "outside the allowed folders"),
        ("{allowed}/../private/secret.png", "outside the allowed folders"),
        ("{allowed}/notes.txt", "not an image file"),
        ("{allowed}/big.png", "larger than"),
        ("{allowed}/missing.png", "no file at"),
        ("{allowed}/fake.png", "not a readable image"),
        ("data:text/plain;base64,aGVsbG8=", "not an image"),
        ("data:image/png,rawbytes", "base64"),
        ("A" * 63 + "!", "no file at"),
        ("", "empty"),
    ],
)
def test_refused_images_get_a_clear_error_and_are_never_read(
    front: McpFrontEnd, photos: Path, image: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    real_open = os.open

    def recording_open(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    image = image.format(allowed=photos, outside=photos.parent / "private")

    async def check(session: ClientSession) -> None:
        result = await session.call_tool("ask_image", {"image": image, "question": "How many?"})
        assert message in error_text(result)
        ran = await session.call_tool("run_program", {"image": image, "program": COUNT})
        assert message in error_text(ran)

    in_memory(front, check)
    assert not any(name.endswith(("secret.png", "notes.txt", "big.png")) for name in opened)


def test_choices_reach_the_planner(front: McpFrontEnd) -> None:
    async def check(session: ClientSession) -> None:
        arguments = {"image": b64(png_bytes()), "question": "How many?", "choices": ["2", "9"]}
        result = await session.call_tool("ask_image", arguments)
        answer = result.structuredContent or {}
        assert answer.get("answer") == "2", result
        trace = await session.read_resource(f"vpagent://traces/{answer['trace_id']}")
        asked = json.loads(trace.contents[0].text)["question"]  # type: ignore[union-attr]
        assert asked == "How many? Choose one of: 2, 9."

    in_memory(front, check)


def test_traces_saved_to_trace_dir_outlive_the_server(tmp_path: Path) -> None:
    agent = make_agent([COUNT], trace_dir=tmp_path)
    image = b64(png_bytes())

    async def ask(session: ClientSession) -> None:
        result = await session.call_tool("ask_image", {"image": image, "question": "How many?"})
        (tmp_path / "asked").write_text((result.structuredContent or {})["trace_id"])

    async def read(session: ClientSession) -> None:
        trace_id = (tmp_path / "asked").read_text()
        trace = await session.read_resource(f"vpagent://traces/{trace_id}")
        assert json.loads(trace.contents[0].text)["id"] == trace_id  # type: ignore[union-attr]
        with pytest.raises(McpError, match="no rationale"):  # pictures are kept in memory only
            await session.read_resource(f"vpagent://traces/{trace_id}/rationale.png")
        with pytest.raises(McpError, match="no trace"):  # an id is never a path
            await session.read_resource("vpagent://traces/..%2Fasked")

    first, second = McpFrontEnd(agent, ImagePolicy()), McpFrontEnd(agent, ImagePolicy())
    try:
        in_memory(first, ask)
        in_memory(second, read)
    finally:
        first.close()
        second.close()
        agent.close()


def test_paths_are_refused_without_allowed_folders(photos: Path) -> None:
    agent = make_agent([COUNT])
    front = McpFrontEnd(agent, ImagePolicy())

    async def check(session: ClientSession) -> None:
        result = await session.call_tool(
            "ask_image", {"image": str(photos / "spots.png"), "question": "How many?"}
        )
        assert "file paths are not allowed" in error_text(result)
        assert "--allow-dir" in error_text(result)

    try:
        in_memory(front, check)
    finally:
        front.close()
        agent.close()


def test_run_program_and_describe_backends(front: McpFrontEnd) -> None:
    program = "def execute_command(image):\n    return len(image.find('spot'))\n"

    async def check(session: ClientSession) -> None:
        ran = await session.call_tool(
            "run_program", {"image": b64(png_bytes()), "program": program}
        )
        outcome = ran.structuredContent or {}
        assert not ran.isError and outcome["ok"] and outcome["answer"] == "2"
        assert outcome["trace"]["steps"][0]["tool"] == "find"
        assert isinstance(ran.content[1], ImageContent)
        crashed = await session.call_tool(
            "run_program", {"image": b64(png_bytes()), "program": "def execute_command(image):\n"
                            "    return 1 / 0\n"},
        )  # fmt: skip
        failure = crashed.structuredContent or {}
        assert crashed.isError and "ZeroDivisionError" in failure["error"]
        assert failure["error_kind"] == "runtime"  # the FailureReason vocabulary, as in traces
        schema = (await session.list_tools()).tools
        outputs = {tool.name: tool.outputSchema for tool in schema}
        assert "runtime" in json.dumps(outputs["run_program"])  # the schema lists the reasons
        backends = (await session.call_tool("describe_backends", {})).structuredContent or {}
        roles = {role["role"]: role for role in backends["roles"]}
        assert roles["detector"]["backend"] == "fake" and roles["detector"]["stand_in"] is True
        assert "fake" in backends["planner"]
        with pytest.raises(McpError, match="no trace with id"):
            await session.read_resource("vpagent://traces/0123456789abcdef0123456789abcdef")

    in_memory(front, check)


def test_admission_limits_and_deadline_as_for_serve() -> None:
    gated = GatedAgent()
    config = ServerConfig(max_concurrent=1, max_queue=0, request_timeout_s=1.0)
    front = McpFrontEnd(gated, ImagePolicy(), config)  # type: ignore[arg-type]
    image = b64(png_bytes())

    async def check(session: ClientSession) -> None:
        results: dict[str, CallToolResult] = {}

        async def ask(question: str) -> None:
            results[question] = await session.call_tool(
                "ask_image", {"image": image, "question": question}
            )

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(ask, "first?")
                while gated.asked == 0 and "first?" not in results:
                    await anyio.sleep(0.01)
                group.start_soon(ask, "second?")
        assert "busy" in error_text(results["second?"])
        assert "retry after" in error_text(results["second?"])
        assert "no answer within 1 s" in error_text(results["first?"])

    try:
        in_memory(front, check)
        deadline = time.monotonic() + 5
        while gated.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gated.cancelled == 1  # the question past its deadline stopped at its next step
    finally:
        front.close()
        gated.close()


# --- a live `vpagent mcp`, with a scripted planner behind an OpenAI-compatible endpoint ---


@asynccontextmanager
async def stdio_session(env: dict[str, str], *args: str, cwd: Path) -> AsyncIterator[ClientSession]:
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "vpagent", "mcp", *args], env=env, cwd=cwd
    )
    with open(cwd / "mcp-stderr.log", "w") as errlog:
        async with (
            stdio_client(server, errlog=errlog) as (reading, writing),
            ClientSession(reading, writing) as session,
        ):
            await session.initialize()
            yield session


@pytest.mark.slow
def test_live_stdio_server_answers_through_the_official_client(
    tmp_path: Path, images_dir: Path
) -> None:
    allowed = tmp_path / "photos"
    allowed.mkdir()
    (allowed / "two_dogs.jpg").write_bytes((images_dir / "two_dogs.jpg").read_bytes())

    async def main(env: dict[str, str]) -> None:
        async with stdio_session(env, "--allow-dir", str(allowed), cwd=tmp_path) as session:
            names = {tool.name for tool in (await session.list_tools()).tools}
            assert names == {"ask_image", "run_program", "describe_backends"}
            result = await session.call_tool(
                "ask_image", {"image": str(allowed / "two_dogs.jpg"), "question": "How many dogs?"}
            )
            answer = result.structuredContent or {}
            assert not result.isError and answer["answer"] == "2", result
            trace = await session.read_resource(f"vpagent://traces/{answer['trace_id']}")
            steps = json.loads(trace.contents[0].text)["steps"]  # type: ignore[union-attr]
            assert steps[0]["tool"] == "find" and len(steps[0]["result"]) == 2
            refused = await session.call_tool(
                "ask_image", {"image": str(images_dir / "bus.jpg"), "question": "How many?"}
            )
            assert "outside the allowed folders" in error_text(refused)

    with ScriptedOpenAI(DOGS) as llm:
        env = {**os.environ, **llm.env(), "PYTHONUNBUFFERED": "1"}
        anyio.run(main, env)
        assert llm.requests == 1
    log = (tmp_path / "mcp-stderr.log").read_text()
    assert "Traceback" not in log, log[-3000:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_live_http_server_on_loopback(tmp_path: Path, images_dir: Path) -> None:
    port = _free_port()
    dogs = (images_dir / "two_dogs.jpg").read_bytes()
    url = f"http://127.0.0.1:{port}/mcp"
    dark = png_bytes()

    async def main() -> None:
        async with (
            streamable_http_client(url) as (reading, writing, _session_id),
            ClientSession(reading, writing) as session,
        ):
            await session.initialize()
            result = await session.call_tool(
                "run_program", {"image": b64(dark), "program": "def execute_command(image):\n"
                                "    return str(int(image.width))\n"},
            )  # fmt: skip
            outcome = result.structuredContent or {}
            assert outcome.get("answer") == "80", result
            trace = await session.read_resource(f"vpagent://traces/{outcome['trace_id']}")
            assert json.loads(trace.contents[0].text)["program"].startswith("def execute_command")  # type: ignore[union-attr]
            asked = await session.call_tool(
                "ask_image", {"image": b64(dogs), "question": "How many dogs are there?"}
            )
            assert (asked.structuredContent or {}).get("answer") == "2", asked
            assert isinstance(asked.content[1], ImageContent)

    with ScriptedOpenAI(DOGS) as llm:
        env = {**os.environ, **llm.env()}
        process = subprocess.Popen(
            [sys.executable, "-m", "vpagent", "mcp", "--http", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip
        try:
            with SocketWatch(process.pid) as watch:
                _wait_for_port(port, process)
                anyio.run(main)
            assert any(seen.laddr == ("127.0.0.1", port) for seen in watch.listening())
            assert not watch.off_loopback(), watch.report()
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    output = process.stdout.read() if process.stdout else ""
    pytest.fail(f"'vpagent mcp --http' did not listen: {output[-2000:]}")
