"""Running one program on one image: sandbox + tool server + trace."""

from __future__ import annotations

import time
from pathlib import Path

from tools.program_host import ProgramHost
from tools.server import LLM, ToolServer
from vpagent.config import Settings
from vpagent.images import ImageInput, load_image
from vpagent.sandbox.executor import SandboxExecutor
from vpagent.sandbox.result import ExecutionResult
from vpagent.trace.records import ImageInfo, Trace


class ProgramRunner:
    """Owns a tool server and a sandbox; runs programs and returns their traces.

    Thread-safe: programs may run concurrently and share the server's models and cache.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        server: ToolServer | None = None,
        llm: LLM | None = None,
        pool_size: int = 2,
    ) -> None:
        self.settings = settings
        self.server = server or ToolServer(settings, llm=llm)
        self.executor = SandboxExecutor(settings.sandbox, pool_size=pool_size)

    def run(
        self, program: str, image: ImageInput, *, question: str | None = None
    ) -> tuple[ExecutionResult, Trace]:
        """Run ``program`` (defining ``execute_command(image)``) on ``image``."""
        pixels = load_image(image)
        host = ProgramHost(self.server, pixels)
        started = time.perf_counter()
        result = self.executor.run(program, host.image, host)
        for step in result.steps:
            step.artifacts = host.artifacts.get(step.index, {})
        height, width = pixels.shape[:2]
        source = str(image) if isinstance(image, str | Path) else None
        trace = Trace(
            question=question,
            program=program,
            image=ImageInfo(sha256=host.sha256, width=width, height=height, source=source),
            steps=result.steps,
            answer=result.answer,
            error_kind=result.error_kind.value if result.error_kind else None,
            error=result.error,
            error_line=result.line,
            stdout=result.stdout,
            timings={"execute_s": time.perf_counter() - started},
        )
        return result, trace

    def close(self) -> None:
        self.executor.close()
        self.server.cache.close()

    def __enter__(self) -> ProgramRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
