"""The SFT record: what export writes and what the student trains and is evaluated on.

One record is one (image, question) -> target pair in Hugging Face chat format. VPD's
multitask mix has two tasks per verified item: ``rationale`` (the chain of thought from the
program's trace, ending in ``Answer: X.``) and ``answer`` (the short answer alone). Labelled items
without a verified program can add ``answer`` records from their human label (``origin="label"``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Task = Literal["rationale", "answer"]
Origin = Literal["program", "label"]

RATIONALE_INSTRUCTION = "Think step by step, then give the answer after 'Answer:'."
ANSWER_INSTRUCTION = "Answer with a single word or number."
_ANSWER_MARKER = re.compile(r"answer\s*:", re.IGNORECASE)


class SFTRecord(BaseModel):
    """One training or validation example; ``image`` is relative to the export folder."""

    model_config = ConfigDict(extra="forbid")

    id: str
    item_id: str
    image: str
    question: str
    answer: str
    type: str
    task: Task
    target: str
    origin: Origin = "program"  # "label": the dataset's own answer, no verified program behind it
    rationale: str | None = None
    license: str | None = None
    source: str | None = None
    scene: str | None = None  # the photo's scene text (`distill scene-text`), for other trainers
    # sha256 of the photo the record shows: an augmented copy's is its source photo's (the key
    # `distill export` splits train/validation on; held-out training photos are grouped by it)
    photo: str | None = None

    def messages(self) -> list[dict[str, Any]]:
        """The user turn (image + prompt) and the assistant turn (the target)."""
        return [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": self.target}]},
        ]

    @property
    def prompt(self) -> str:
        return user_prompt(self.question, self.task)


def user_prompt(question: str, task: Task) -> str:
    """The text of the user turn for ``task``."""
    instruction = RATIONALE_INSTRUCTION if task == "rationale" else ANSWER_INSTRUCTION
    return f"{question.strip()}\n{instruction}"


def rationale_target(rationale: str, answer: str) -> str:
    """A rationale that always ends in the verified answer."""
    return f"{rationale.strip()} Answer: {answer}."


def parse_answer(text: str) -> str:
    """The answer in a model's output: what follows the last ``Answer:``, else the whole text."""
    markers = list(_ANSWER_MARKER.finditer(text))
    answer = text[markers[-1].end() :] if markers else text
    return answer.strip().splitlines()[0].strip().rstrip(".").strip() if answer.strip() else ""
