"""Running an agent over a dataset and summarising accuracy and time."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from statistics import mean

from pydantic import BaseModel
from rich.progress import track

from vpagent.agent import Agent
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.datasets.choices import letter_index
from vpagent.evaluation.metrics import exact_match, map_to_choice, vqa_soft_accuracy
from vpagent.evaluation.stats import interval


class ItemResult(BaseModel):
    id: str
    type: str
    question: str
    prediction: str | None
    expected: list[str]
    program: str | None = None
    score: float
    error_kind: str | None = None
    error: str | None = None
    answered_by: str | None = None  # program or student; None: no answer at all
    verified: bool = False  # a program ran without guesses (not a fallback or a stand-in guess)
    unverified_reason: str | None = None
    plan_s: float = 0.0
    execute_s: float = 0.0
    total_s: float = 0.0


class TypeScore(BaseModel):
    """Mean score with its bootstrap 95% interval (low, high)."""

    n: int
    accuracy: float
    low: float
    high: float


class Report(BaseModel):
    n: int
    accuracy: float
    low: float
    high: float
    per_type: dict[str, TypeScore]
    seconds_per_question: float
    plan_seconds_per_question: float
    execute_seconds_per_question: float
    errors: dict[str, int]


def choice_index(prediction: str | None, choices: list[str]) -> int | None:
    """The choice a prediction names: a letter ("B", "(b)", "(B) no"), else by its text."""
    if prediction is not None:
        letter = letter_index(prediction, len(choices))
        if letter is not None:
            return letter
    return map_to_choice(prediction, choices)


def score_item(item: EvalItem, prediction: str | None) -> float:
    """Multiple choice: the mapped choice is right; VQA: soft accuracy; else exact match."""
    if item.choices:
        index = choice_index(prediction, item.choices)
        return float(index is not None and item.choices[index] == item.answers[0])
    if item.soft:
        return vqa_soft_accuracy(prediction, item.answers)
    return exact_match(prediction, item.answers)


def evaluate_item(agent: Agent, item: EvalItem) -> ItemResult:
    question = item.question
    if item.choices:
        question += " Choose one of: " + ", ".join(item.choices) + "."
    try:
        result = agent.ask(item.image, question)
    except ValueError as error:  # an unreadable image in the dataset
        return ItemResult(
            id=item.id, type=item.type, question=item.question, prediction=None,
            expected=item.answers, score=0.0, error_kind="input", error=str(error),
        )  # fmt: skip
    return ItemResult(
        id=item.id,
        type=item.type,
        question=item.question,
        prediction=result.answer,
        expected=item.answers,
        program=result.program,
        score=score_item(item, result.answer),
        error_kind=result.error_kind,
        error=result.error,
        answered_by=result.answered_by if result.answer is not None else None,
        verified=result.verified,
        unverified_reason=result.unverified_reason,
        plan_s=result.timings.get("plan_s", 0.0),
        execute_s=result.timings.get("execute_s", 0.0),
        total_s=result.timings.get("total_s", 0.0),
    )


def summarise(results: Sequence[ItemResult]) -> Report:
    by_type: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for result in results:
        by_type[result.type].append(result.score)
        if result.error_kind:
            errors[result.error_kind] += 1
    scores = [r.score for r in results]
    low, high = interval(scores)
    return Report(
        n=len(results),
        accuracy=mean(scores) if results else 0.0,
        low=low,
        high=high,
        per_type={kind: _score(s) for kind, s in sorted(by_type.items())},
        seconds_per_question=mean(r.total_s for r in results) if results else 0.0,
        plan_seconds_per_question=mean(r.plan_s for r in results) if results else 0.0,
        execute_seconds_per_question=mean(r.execute_s for r in results) if results else 0.0,
        errors=dict(errors),
    )


def _score(scores: list[float]) -> TypeScore:
    low, high = interval(scores)
    return TypeScore(n=len(scores), accuracy=mean(scores), low=low, high=high)


def evaluate(
    agent: Agent, items: Sequence[EvalItem], *, out: Path | None = None, progress: bool = True
) -> tuple[Report, list[ItemResult]]:
    """Ask every item in turn; write one JSON line per item to ``out`` as it goes."""
    results: list[ItemResult] = []
    handle = open(out, "w", encoding="utf-8") if out is not None else None  # noqa: SIM115
    try:
        for item in track(items, description="evaluating", disable=not progress):
            result = evaluate_item(agent, item)
            results.append(result)
            if handle is not None:
                handle.write(json.dumps(result.model_dump()) + "\n")
                handle.flush()
    finally:
        if handle is not None:
            handle.close()
    return summarise(results), results
