"""Running one program on one image: sandbox + toolbox + trace."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vpagent.answer_form import checked
from vpagent.attempts import FailureReason
from vpagent.config import Settings
from vpagent.events import EventCallback, ToolStep
from vpagent.images import ImageInput, load_image
from vpagent.program_answers import form_problem
from vpagent.sandbox.executor import SandboxExecutor, ToolHandler
from vpagent.sandbox.result import ExecutionResult
from vpagent.student.backend import register_student_backends
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.toolbox import LLM, Toolbox
from vpagent.tools.types import Mark, StepArtifacts
from vpagent.trace.records import ImageInfo, Trace


class ProgramRunner:
    """Owns a toolbox and a sandbox; runs programs and returns their traces.

    Thread-safe: programs may run concurrently and share the toolbox's models and cache.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        toolbox: Toolbox | None = None,
        llm: LLM | None = None,
        pool_size: int = 2,
    ) -> None:
        self.settings = settings
        register_student_backends()  # `backend = "student"` names a layer above the tools
        self.toolbox = toolbox or Toolbox(settings.toolbox_config(), llm=llm)
        self.executor = SandboxExecutor(settings.sandbox, pool_size=pool_size)

    def run(
        self,
        program: str,
        image: ImageInput,
        *,
        question: str | None = None,
        choices: Sequence[str] | None = None,
        marks: Sequence[Mark] = (),
        on_event: EventCallback | None = None,
    ) -> tuple[ExecutionResult, Trace]:
        """Run ``program`` (defining ``execute_command(image)``) on ``image``.

        ``on_event`` hears a :class:`ToolStep` as each tool call starts. With the ``question``, an
        answer not of the kind it asks for (not one of its options, not yes/no, not a number
        for "how many", ...) is an ``answer_form`` failure (:mod:`vpagent.answer_form`), and a
        program whose every ``return`` can give only such answers fails so without running
        (:mod:`vpagent.program_answers`); a multiple-choice question (``choices``) is answered
        in whatever form its options take. ``marks``: marks given with the question; the
        program's ``image.marks()`` returns them.
        """
        pixels = load_image(image)
        host = ProgramHost(self.toolbox, pixels, marks=marks)
        handler: ToolHandler = host
        if on_event is not None:
            calls = itertools.count(1)

            def handler(tool: str, args: dict[str, Any]) -> Any:
                on_event(ToolStep(next(calls), tool))
                return host(tool, args)

        started = time.perf_counter()
        problem = form_problem(question, program, choices) if question is not None else None
        if problem is not None:
            result = ExecutionResult(
                ok=False, error_kind=FailureReason.ANSWER_FORM, error=problem[0], line=problem[1]
            )
        else:
            result = self.executor.run(program, host.image, handler)
        if question is not None:  # "left or right?" answered "whippet" is not an answer
            result = checked(question, result, choices)
        for step in result.steps:
            step.artifacts = host.artifacts.get(step.index, StepArtifacts())
        height, width = pixels.shape[:2]
        source = str(image) if isinstance(image, str | Path) else None
        trace = Trace(
            question=question,
            program=program,
            image=ImageInfo(sha256=host.sha256, width=width, height=height, source=source),
            steps=result.steps,
            answer=result.answer,
            error_kind=result.error_kind,
            error=result.error,
            error_line=result.line,
            traceback=result.traceback,
            stdout=result.stdout,
            timings={"execute_s": time.perf_counter() - started},
        )
        return result, trace

    def answer_directly(self, image: ImageInput, question: str) -> tuple[str, str]:
        """Answer without a program, from what the VQA role knows: (answer, how it was got).

        The fallback when every program failed; raises the VQA role's CannotAnswer (or other
        ToolError) if it has no answer at all.
        """
        return ProgramHost(self.toolbox, load_image(image)).best_guess(question)

    def close(self) -> None:
        self.executor.close()
        self.toolbox.cache.close()

    def __enter__(self) -> ProgramRunner:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
