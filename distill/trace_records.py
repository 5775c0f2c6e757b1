"""What `vpagent distill traces` writes: one record per item, holding all of its attempts."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from vpagent.answers import with_choices
from vpagent.attempts import Attempt, FailureReason
from vpagent.evaluation.datasets import EvalItem

ITEMS_FILE = "items.jsonl"
RUN_FILE = "run.json"

# Why an item has no verified program (the data card counts these by name).
IMAGE_MISSING = "image_missing"
IMAGE_CORRUPT = "image_corrupt"
PLANNING_FAILED = "planning_failed"  # the LLM never gave a usable program (prose, bad code)
PROGRAMS_FAILED = "programs_failed"  # every program crashed, timed out or was refused
NO_MATCH = "no_match"  # programs answered, but no answer matched the label
GUESSED = "matched_without_tools"  # only a program that never looked at the image matched
WORKER_ERROR = FailureReason.WORKER_ERROR.value  # an unexpected error while tracing the item
REASONS = (
    IMAGE_MISSING, IMAGE_CORRUPT, PLANNING_FAILED, PROGRAMS_FAILED, NO_MATCH, GUESSED, WORKER_ERROR,
)  # fmt: skip


class TracedAttempt(Attempt):
    """One attempt at an item (:class:`vpagent.attempts.Attempt`), checked against its label."""

    matches: bool = Field(False, description="The answer matches the label.")
    correct: bool = Field(False, description="It matches, with at least one tool call behind it.")


class ItemRecord(BaseModel):
    """One finished item: verified (``verified`` indexes its attempts) or rejected (``reason``)."""

    item_id: str
    status: Literal["verified", "rejected"]
    reason: str | None = None
    detail: str | None = None
    traceback: str | None = Field(None, description="Where a worker_error was raised (bounded).")
    item: dict[str, Any]
    question: str = Field(description="The question as put to the planner (choices appended).")
    image_sha256: str | None = None
    width: int | None = None
    height: int | None = None
    attempts: list[TracedAttempt] = Field(default_factory=list)
    verified: int | None = None
    seconds: float = 0.0

    @property
    def eval_item(self) -> EvalItem:
        return EvalItem.model_validate(self.item)

    @property
    def verified_attempt(self) -> TracedAttempt | None:
        return self.attempts[self.verified] if self.verified is not None else None


def asked_question(item: EvalItem) -> str:
    """The question as the planner sees it: multiple-choice options appended (as `eval` does)."""
    return with_choices(item.question, item.choices)
