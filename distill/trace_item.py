"""Tracing one item: up to k programs (temperature 0 first, then sampled), stop at a match."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vpagent.agent import Agent
from vpagent.attempts import FailureReason, bounded_traceback, describe_error
from vpagent.distill.trace_records import (
    GUESSED,
    IMAGE_CORRUPT,
    IMAGE_MISSING,
    NO_MATCH,
    PLANNING_FAILED,
    PROGRAMS_FAILED,
    WORKER_ERROR,
    ItemRecord,
    TracedAttempt,
    asked_question,
)
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.evaluate import score_item
from vpagent.images import ImageError, load_image
from vpagent.llm.packs import sha256_file
from vpagent.logs import log_context

VERIFY_SCORE = 1.0  # an answer counts as matching the label only with full credit

log = logging.getLogger(__name__)


def trace_item(agent: Agent, item: EvalItem, k: int) -> ItemRecord:
    """Trace ``item``: never raises; whatever goes wrong becomes a named rejection."""
    started = time.perf_counter()
    record = ItemRecord(
        item_id=item.id,
        status="rejected",
        item=item.model_dump(mode="json"),
        question=asked_question(item),
    )
    try:
        with log_context(item_id=item.id):
            _trace_into(agent, item, k, record)
    except Exception as error:  # a bug or a broken backend must not end the run
        log.exception("item %s: tracing raised", item.id)
        record.status, record.verified = "rejected", None
        record.reason, record.detail = WORKER_ERROR, describe_error(error)
        record.traceback = bounded_traceback(error)
    record.seconds = time.perf_counter() - started
    return record


def _trace_into(agent: Agent, item: EvalItem, k: int, record: ItemRecord) -> None:
    path = Path(item.image)
    if not path.is_file():
        record.reason, record.detail = IMAGE_MISSING, f"no image file at {path}"
        return
    try:
        pixels = load_image(path)
    except ImageError as error:
        record.reason, record.detail = IMAGE_CORRUPT, str(error)
        return
    record.image_sha256 = sha256_file(path)
    record.height, record.width = (int(n) for n in pixels.shape[:2])
    for sample in range(k):
        for attempt in _sample(agent, pixels, item, record.question, sample):
            attempt.matches = (
                attempt.answer is not None and score_item(item, attempt.answer) >= VERIFY_SCORE
            )  # a constant answer that happens to match is a guess, not a verified program
            attempt.correct = attempt.matches and any(step.ok for step in attempt.steps)
            record.attempts.append(attempt)
            if attempt.correct:
                record.status, record.verified = "verified", len(record.attempts) - 1
                return
    record.reason = _reason(record.attempts)


def _reason(attempts: list[TracedAttempt]) -> str:
    if any(a.matches for a in attempts):
        return GUESSED
    if all(a.reason == FailureReason.PLANNING for a in attempts):
        return PLANNING_FAILED
    if all(a.answer is None for a in attempts):
        return PROGRAMS_FAILED
    return NO_MATCH


def _sample(
    agent: Agent, pixels: np.ndarray, item: EvalItem, question: str, sample: int
) -> Iterator[TracedAttempt]:
    """The attempts of one sample: its program, then run-time repairs while it fails."""
    for run in agent.live_attempts(pixels, question, sample, choices=item.choices):
        yield TracedAttempt.model_validate(run.attempt().model_dump())
