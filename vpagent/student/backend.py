"""A trained student (``vpagent distill train``) as the ``vqa`` and ``captioner`` backend.

``[tools.vqa] backend = "student", model = "CKPT"`` makes ``simple_query`` ask the student with
the answer-only prompt it was trained on. As a captioner it is asked to describe the image in a
sentence: it was trained on questions, not captions, which its ToolInfo says.
"""

from __future__ import annotations

import threading
from typing import Any

from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.registry import register_backend
from vpagent.tools.roles import VQA, Captioner, Image
from vpagent.tools.types import ToolInfo

CAPTION_QUESTION = "Describe the image in one sentence."


class _StudentBase:
    backend = "student"

    def __init__(self, model: str, device: str = "auto", max_new_tokens: int = 32) -> None:
        self.model = model
        self.device = device
        self.max_new_tokens = max_new_tokens
        self._student: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._student is None:
                try:
                    from vpagent.student.students import load_student, on_device
                except ImportError as error:
                    raise ModelUnavailable(
                        "the student backend needs torch, transformers and peft: "
                        "pip install 'vpagent[hf,distill]'"
                    ) from error
                try:
                    self._student = on_device(load_student(self.model), self.device)
                except ValueError as error:
                    raise ModelUnavailable(str(error)) from error
            return self._student

    def _ask(self, images: list[Image], prompts: list[str]) -> list[str]:
        from vpagent.student.records import parse_answer

        if not images:
            return []
        student = self._loaded()
        with self._lock:
            replies = student.generate(images, prompts, max_new_tokens=self.max_new_tokens)
        return [parse_answer(reply.text) for reply in replies]

    def _info(self, role: str, note: str) -> ToolInfo:
        return ToolInfo(
            role=role,
            backend=self.backend,
            model=f"trained student ({self.model})",
            weights=self.model,
            device=self.device,
            stand_in=False,
            note=note,
        )


class StudentVQA(_StudentBase, VQA):
    """``simple_query`` answered by the student in one pass."""

    def answer_batch(self, images: list[Image], questions: list[str]) -> list[str]:
        from vpagent.student.records import user_prompt

        if len(images) != len(questions):
            raise ValueError("answer_batch needs one question per image")
        return self._ask(images, [user_prompt(q, "answer") for q in questions])

    def info(self) -> ToolInfo:
        return self._info("vqa", "distilled student VLM, answer-only prompt")


class StudentCaptioner(_StudentBase, Captioner):
    """``caption`` as the student's reply to 'Describe the image in one sentence.'"""

    def caption_batch(self, images: list[Image]) -> list[str]:
        return self._ask(images, [CAPTION_QUESTION] * len(images))

    def info(self) -> ToolInfo:
        return self._info("captioner", "distilled student VLM; trained on questions, not captions")


def register_student_backends() -> None:
    """Make ``backend = "student"`` serve the vqa and captioner roles (idempotent)."""
    register_backend("vqa", "student", StudentVQA)
    register_backend("captioner", "student", StudentCaptioner)
