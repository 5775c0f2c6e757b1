"""Running an agent over a dataset and summarising accuracy and time."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from statistics import mean

from pydantic import BaseModel, Field

from vpagent.agent import Agent
from vpagent.attempts import Attempt, FailureReason, bounded_traceback, describe_error
from vpagent.evaluation.datasets import EvalItem
from vpagent.evaluation.datasets.choices import letter_index
from vpagent.evaluation.metrics import exact_match, map_to_choice, vqa_soft_accuracy
from vpagent.evaluation.run_header import run_header
from vpagent.evaluation.stats import interval
from vpagent.logs import log_context
from vpagent.pool.dataset_run import Backend, run_items
from vpagent.pool.header import RunHeader
from vpagent.pool.job import AgentFactory, Job

log = logging.getLogger(__name__)


class ItemResult(BaseModel):
    """One answered item: what ``vpagent eval --out`` writes per line."""

    id: str
    type: str
    pair: str | None = None  # items sharing a pair id are scored together (pair accuracy)
    question: str
    prediction: str | None
    expected: list[str]
    choices: list[str] | None = None
    program: str | None = None
    score: float
    error_kind: FailureReason | None = None
    error: str | None = None
    answered_by: str | None = None  # program or student; None: no answer at all
    verified: bool = False  # a program ran without guesses (not a fallback or a stand-in guess)
    unverified_reason: str | None = None
    plan_s: float = 0.0
    execute_s: float = 0.0
    total_s: float = 0.0
    attempts: list[Attempt] = Field(
        default_factory=list,
        description="Every program tried, in order, and the fallback or student answer (empty "
        "in files written before attempts were kept).",
    )


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
    pairs: TypeScore | None = None  # datasets with pairs: share of pairs with every item right
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
    """Ask one item and score the answer; never raises (a failure is the result's error).
    What is logged meanwhile carries the item's id."""
    with log_context(item_id=item.id):
        return _evaluate_item(agent, item)


def _evaluate_item(agent: Agent, item: EvalItem) -> ItemResult:
    try:
        result = agent.ask(item.image, item.question, choices=item.choices)
    except ValueError as error:  # an unreadable image in the dataset
        log.warning("item %s: unreadable input: %s", item.id, error)
        return _failed(item, Attempt(reason=FailureReason.INPUT, message=str(error)))
    except Exception as error:  # a crashed backend must not end a run of thousands
        log.exception("item %s: the agent raised", item.id)
        failure = Attempt(
            reason=FailureReason.WORKER_ERROR,
            message=describe_error(error),
            traceback=bounded_traceback(error),
        )
        return _failed(item, failure)
    return ItemResult(
        id=item.id,
        type=item.type,
        pair=item.pair,
        question=item.question,
        prediction=result.answer,
        expected=item.answers,
        choices=item.choices,
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
        attempts=result.attempts,
    )


def _failed(item: EvalItem, failure: Attempt) -> ItemResult:
    return ItemResult(
        id=item.id, type=item.type, pair=item.pair, question=item.question, prediction=None,
        expected=item.answers, choices=item.choices, score=0.0, error_kind=failure.reason,
        error=failure.message, attempts=[failure],
    )  # fmt: skip


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
        pairs=_pairs(results),
        seconds_per_question=mean(r.total_s for r in results) if results else 0.0,
        plan_seconds_per_question=mean(r.plan_s for r in results) if results else 0.0,
        execute_seconds_per_question=mean(r.execute_s for r in results) if results else 0.0,
        errors=dict(errors),
    )


def _score(scores: list[float]) -> TypeScore:
    low, high = interval(scores)
    return TypeScore(n=len(scores), accuracy=mean(scores), low=low, high=high)


def _pairs(results: Sequence[ItemResult]) -> TypeScore | None:
    """Pair accuracy: a pair counts only when every item in it is right (MMVP's metric)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for result in results:
        if result.pair is not None:
            groups[result.pair].append(result.score)
    both = [float(all(score == 1.0 for score in scores)) for scores in groups.values()
            if len(scores) > 1]  # fmt: skip
    return _score(both) if both else None


def evaluate(
    items: Sequence[EvalItem],
    agent: Agent | AgentFactory,
    *,
    out: Path | None = None,
    header: RunHeader | None = None,
    backend: Backend | None = None,
    concurrency: int = 1,
    resume: bool = False,
    retry_errors: bool = False,
    progress: bool = True,
) -> tuple[Report, list[ItemResult]]:
    """Ask every item not yet in ``out``; the report covers every item of ``items`` in it.

    ``agent``: an agent (used in this process, left open) or a factory (each worker builds
    one; ``backend`` says where). ``out`` gets one JSON line per item as it finishes, after a
    header line naming the dataset and settings (``header``; default: from the items alone).
    ``resume`` continues a run in ``out``; ``retry_errors`` asks again the items that failed
    with ``worker_error``. ``concurrency``: items in flight per agent (``llm.parallel``).
    """
    backend = backend or Backend()
    if isinstance(agent, Agent):
        backend = replace(backend, agent=agent, workers=0, use_ray=False)
        factory: AgentFactory = lambda: agent  # noqa: E731  (never called: the agent is given)
    else:
        factory = agent
    running = _Running()
    finished = run_items(
        items,
        Job(factory, evaluate_item, ItemResult, concurrency=concurrency),
        out,
        header or run_header("eval", items),
        backend=backend,
        resume=resume,
        redo=(
            (lambda result: result.error_kind == FailureReason.WORKER_ERROR)
            if retry_errors
            else None
        ),
        describe=running.add,
        label="evaluating",
        progress=progress,
    )
    return summarise(finished.records), finished.records


class _Running:
    """The progress bar's live text: accuracy over the items this run finished."""

    def __init__(self) -> None:
        self.n, self.total = 0, 0.0

    def add(self, result: ItemResult) -> str:
        self.n += 1
        self.total += result.score
        return f"accuracy {self.total / self.n:.1%} of {self.n} this run"
