"""The MCP server: vpagent's abilities as Model Context Protocol tools and resources.

Tools: ``ask_image`` (plan, run, answer, with the visual rationale as a PNG), ``run_program``
(a given program in the same sandbox) and ``describe_backends`` (what serves each role). Traces
are resources, ``vpagent://traces/{id}`` (JSON) and ``vpagent://traces/{id}/rationale.png``.
Questions go through the HTTP server's admission control and deadline
(:class:`vpagent.http.answering.Answerer`, ``[server]`` settings): a busy server refuses with
the seconds to wait, a question past its deadline stops with how far it got.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import re
import threading
from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import anyio
import cachetools
import numpy as np
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.exceptions import ToolError
from mcp.types import CallToolResult, ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import AnyUrl, BaseModel, Field

import vpagent
from vpagent.agent import Agent
from vpagent.attempts import FailureReason
from vpagent.config import AnswerMode, ServerConfig
from vpagent.events import Event
from vpagent.http.admission import Admission, Refused
from vpagent.http.answering import Answerer, DeadlineExceeded
from vpagent.http.metrics import ServerMetrics
from vpagent.images import load_image
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.mcp_server.rationale import rationale_png
from vpagent.result import MAX_QUESTION_CHARS, Result, ResultSummary
from vpagent.tools.types import ToolInfo
from vpagent.trace.records import Trace
from vpagent.trace.store import load_trace

TRACES_KEPT = 256
MAX_PROGRAM_CHARS = 20_000
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")

INSTRUCTIONS = (
    "vpagent answers questions about images by writing a short Python program over vision "
    "tools (detector, segmenter, matcher, captioner, VQA, OCR, depth, faces), running it in a "
    "sandbox and returning the answer with the program and a visual rationale. Give images as "
    "base64 or a data URL; file paths work only inside the folders the user allowed."
)
IMAGE_HELP = (
    "The image: base64, a data URL (data:image/png;base64,...), or a file path inside a folder "
    "the server was started with (--allow-dir)."
)


class ProgramRun(BaseModel):
    """What ``run_program`` returns: the program's answer or error, and its trace."""

    ok: bool
    answer: str | None = None
    error: str | None = None
    error_kind: FailureReason | None = None
    error_line: int | None = None
    trace_id: str
    trace: dict[str, Any] = Field(description="Every tool call the program made, in order.")


class Backends(BaseModel):
    """What ``describe_backends`` returns."""

    version: str
    planner: str = Field(description="The chat model that writes programs, or why none runs.")
    roles: list[ToolInfo] = Field(description="Each vision role: backend, model, stand-in or real.")
    student: str | None = Field(None, description="The trained student answering first, if any.")


class TraceShelf:
    """The server's recent traces with their rationale PNG; older ones from ``trace_dir``."""

    def __init__(self, trace_dir: Path | None, max_entries: int = TRACES_KEPT) -> None:
        self.trace_dir = trace_dir
        self._entries: cachetools.LRUCache[str, tuple[Trace, bytes]] = cachetools.LRUCache(
            max_entries
        )
        self._lock = threading.Lock()

    def put(self, trace: Trace, png: bytes) -> None:
        with self._lock:
            self._entries[trace.id] = (trace, png)

    def keep(self, result: Result, pixels: np.ndarray) -> None:
        """Store ``result``'s trace with its rationale (in the answering thread: drawing is
        slow)."""
        if result.trace is not None:
            self.put(result.trace, rationale_png(result.trace, pixels))

    def trace(self, trace_id: str) -> Trace:
        with self._lock:
            kept: tuple[Trace, bytes] | None = self._entries.get(trace_id)
        if kept is not None:
            return kept[0]
        path = self.trace_dir / f"{trace_id}.json" if self.trace_dir else None
        if TRACE_ID.match(trace_id) and path is not None and path.is_file():
            return load_trace(path)
        raise ValueError(f"no trace with id {trace_id!r} (only recent traces are kept)")

    def png(self, trace_id: str) -> bytes:
        with self._lock:
            kept: tuple[Trace, bytes] | None = self._entries.get(trace_id)
        if kept is None:
            raise ValueError(f"no rationale for trace {trace_id!r} (only recent ones are kept)")
        return kept[1]


def trace_uri(trace_id: str) -> str:
    return f"vpagent://traces/{trace_id}"


class McpFrontEnd:
    """An MCP server around ``agent``: ``server`` is the FastMCP instance to run.

    ``policy`` says which images are accepted; ``config`` gives the admission limits and the
    deadline (the ``[server]`` settings, as for ``vpagent serve``).
    """

    def __init__(
        self,
        agent: Agent,
        policy: ImagePolicy,
        config: ServerConfig | None = None,
    ) -> None:
        config = config or ServerConfig()
        self.agent = agent
        self.policy = policy
        self.admission = Admission(config.max_concurrent or agent.parallel, config.max_queue)
        metrics = ServerMetrics(
            lambda: self.admission.waiting, lambda: self.admission.running, dict
        )
        self.traces = TraceShelf(getattr(agent, "trace_dir", None))
        self.answerer = Answerer(
            agent, self.admission, metrics, config.request_timeout_s, on_answer=self.traces.keep
        )
        self.server = FastMCP(  # host: DNS-rebinding protection for loopback names only
            "vpagent", instructions=INSTRUCTIONS, host="127.0.0.1", log_level="WARNING"
        )
        self._register()

    def close(self) -> None:
        """Refuse new questions and stop the answering threads."""
        self.admission.draining = True
        self.answerer.close()

    def _register(self) -> None:
        server = self.server
        read_only = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
        for tool in (self.ask_image, self.run_program, self.describe_backends):
            description = " ".join((inspect.getdoc(tool) or "").split())  # one paragraph
            server.add_tool(tool, description=description, annotations=read_only)
        server.resource(
            "vpagent://traces/{trace_id}",
            name="trace",
            description="A trace as JSON: question, program, every tool call, answer, timings.",
            mime_type="application/json",
        )(self.read_trace)
        server.resource(
            "vpagent://traces/{trace_id}/rationale.png",
            name="rationale",
            description="The visual rationale of a recent trace: every step drawn on the image.",
            mime_type="image/png",
        )(self.read_rationale)

    async def ask_image(
        self,
        image: Annotated[str, Field(description=IMAGE_HELP)],
        question: Annotated[
            str,
            Field(
                description="A question about the image, e.g. 'How many dogs are there?'",
                max_length=MAX_QUESTION_CHARS,
            ),
        ],
        ctx: Context,  # type: ignore[type-arg]
        mode: Annotated[
            AnswerMode | None,
            Field(description="Who answers: program (default), student, student-then-program."),
        ] = None,
        choices: Annotated[
            list[str] | None,
            Field(description="The options of a multiple-choice question; the answer is one."),
        ] = None,
    ) -> Annotated[CallToolResult, ResultSummary]:
        """Answer a question about an image: vpagent writes a Python program over vision tools,
        runs it in a sandbox and returns the answer, who answered (`answered_by`), whether the
        tools verified it (`verified`), the program, timings, a trace id, and the visual
        rationale as a PNG. Read the full trace at vpagent://traces/{trace_id}."""
        events: asyncio.Queue[Event] = asyncio.Queue()
        relay = asyncio.create_task(_relay_progress(events, ctx))
        try:
            data = await anyio.to_thread.run_sync(self.policy.read, image)
            asked = await self.answerer.read(data, question, mode, choices)
            result = await self.answerer.answer(asked, _never_gone, events)
        except Refused as error:
            raise ToolError(f"{error.detail}; retry after {error.retry_after} s") from None
        except (DeadlineExceeded, ValueError) as error:
            raise ToolError(str(error)) from None
        finally:
            relay.cancel()
            with suppress(asyncio.CancelledError):
                await relay
        summary = ResultSummary.of(result)
        content: list[Any] = [TextContent(type="text", text=summary.model_dump_json(indent=1))]
        if result.trace is not None:
            content += _trace_content(result.trace.id, self.traces.png(result.trace.id))
        return CallToolResult(
            content=content,
            structuredContent=summary.model_dump(mode="json"),
            isError=result.answer is None,
        )

    async def run_program(
        self,
        image: Annotated[str, Field(description=IMAGE_HELP)],
        program: Annotated[
            str,
            Field(
                description="Python source defining execute_command(image) over vpagent's image "
                "API (find, exists, simple_query, crop, ...); it runs in the sandbox.",
                max_length=MAX_PROGRAM_CHARS,
            ),
        ],
    ) -> Annotated[CallToolResult, ProgramRun]:
        """Run a Python program of your own against an image in vpagent's sandbox (the same one
        its planner's programs run in) and return its answer or error, its trace (every tool
        call with its result) and the visual rationale as a PNG."""
        try:
            pixels = await anyio.to_thread.run_sync(self._pixels, image)
        except ValueError as error:
            raise ToolError(str(error)) from None
        try:
            async with self.admission.place():
                execution, trace = await anyio.to_thread.run_sync(
                    self.agent.runner.run, program, pixels
                )
        except Refused as error:
            raise ToolError(f"{error.detail}; retry after {error.retry_after} s") from None
        png = await anyio.to_thread.run_sync(rationale_png, trace, pixels)
        self.traces.put(trace, png)
        outcome = ProgramRun(
            ok=execution.ok,
            answer=execution.answer,
            error=execution.error,
            error_kind=execution.error_kind,
            error_line=execution.line,
            trace_id=trace.id,
            trace=trace.model_dump(mode="json"),
        )
        summary = execution.feedback() + f"\ntrace: {trace_uri(trace.id)}"
        return CallToolResult(
            content=[TextContent(type="text", text=summary), *_trace_content(trace.id, png)],
            structuredContent=outcome.model_dump(mode="json"),
            isError=not execution.ok,
        )

    async def describe_backends(self) -> Backends:
        """What serves each of vpagent's roles (detector, segmenter, matcher, captioner, vqa,
        ocr, depth, faces): backend, model, device, and whether it is real or a stand-in; and
        which chat model plans the programs."""
        return await anyio.to_thread.run_sync(self._backends)

    def read_trace(self, trace_id: str) -> str:
        """The trace as JSON."""
        return self.traces.trace(trace_id).model_dump_json(indent=1)

    def read_rationale(self, trace_id: str) -> bytes:
        """The rationale PNG of a recent trace."""
        return self.traces.png(trace_id)

    def _pixels(self, image: str) -> Any:
        return load_image(self.policy.read(image))

    def _backends(self) -> Backends:
        agent = self.agent
        student = None
        if agent.student is not None:
            student = f"{agent.student.folder} (agent.mode = {agent.student.mode})"
        if not agent.program_path_started:
            planner = "not started (agent.mode = student): it starts with the first program"
            return Backends(version=vpagent.__version__, planner=planner, roles=[], student=student)
        planner_model = agent.planner
        planner = f"{type(planner_model.chat_model).__name__} ({planner_model.model_id})"
        roles = agent.runner.toolbox.describe()
        return Backends(version=vpagent.__version__, planner=planner, roles=roles, student=student)


def _trace_content(trace_id: str, png: bytes) -> list[Any]:
    """The rationale image and a link to the trace resource."""
    return [
        ImageContent(type="image", data=base64.b64encode(png).decode(), mimeType="image/png"),
        ResourceLink(
            type="resource_link",
            uri=AnyUrl(trace_uri(trace_id)),
            name=f"trace {trace_id}",
            mimeType="application/json",
        ),
    ]


async def _never_gone() -> bool:
    """MCP cancels a request by cancelling its task; there is no connection to poll."""
    return False


async def _relay_progress(events: asyncio.Queue[Event], ctx: Context) -> None:  # type: ignore[type-arg]
    """Forward the question's progress (planning, step k) as MCP progress notifications."""
    count = 0
    while True:
        event = await events.get()
        count += 1
        await ctx.report_progress(count, None, str(event))
