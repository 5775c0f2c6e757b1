"""The Agent: question + image -> program -> sandboxed run -> answer, with a repair loop."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.language_models import BaseChatModel
from pydantic import ValidationError

from vpagent.answers import normalize_answer, with_choices
from vpagent.attempts import Attempt, FailureReason, bounded_traceback, describe_error
from vpagent.config import Settings
from vpagent.events import (
    AnsweringWithoutProgram,
    EventCallback,
    Planning,
    Repairing,
    RunningProgram,
    Starting,
    TokensWritten,
    ignore,
)
from vpagent.images import ImageInput, load_image
from vpagent.live_attempt import LiveAttempt
from vpagent.planner import OutOfTime, Planner, PlanningFailed
from vpagent.program_runner import ProgramRunner
from vpagent.result import Result, validate_question
from vpagent.student_mode import STUDENT, StudentAnswerer, student_first
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.types import Mark
from vpagent.tools.warm_up import warm_up
from vpagent.trace.store import save_trace

LLM_QUERY_SYSTEM = "Answer in a few words, without explanation."

log = logging.getLogger(__name__)


def build_agent(
    settings: Settings,
    chat_model: BaseChatModel | None = None,
    *,
    on_event: EventCallback | None = None,
) -> Agent:
    """The agent a configuration describes; ``chat_model`` overrides ``settings.llm``.

    ``on_event`` hears start-up progress (the planner's prompt prefix is loaded now). In
    ``agent.mode = "student"`` nothing of the program path starts until a question asks for a
    program (``mode="program"``): the student alone answers in seconds from a cold start.
    """
    from vpagent.llm.chat import build_chat_model, complete
    from vpagent.planner.factory import build_planner
    from vpagent.student_mode import build_student_answerer

    student = build_student_answerer(settings.agent)

    def program_path(at_start: bool = False) -> tuple[Planner, ProgramRunner]:
        chat = chat_model if chat_model is not None else build_chat_model(settings.llm)
        planner = build_planner(settings, chat, warm=chat_model is None, on_event=on_event)
        runner = ProgramRunner(
            settings,
            llm=lambda question: complete(chat, question, system=LLM_QUERY_SYSTEM),
            pool_size=max(2, settings.llm.parallel),  # a ready sandbox per question in flight
        )
        # Every role is loaded at start-up only: built for a question (student mode), the
        # program path loads what that question uses, within its time budget.
        if at_start and chat_model is None and settings.agent.warm_tools:
            notify = on_event or ignore
            notify(Starting("loading the tools' models"))
            warmed = warm_up(runner.toolbox)
            log.info("%s", warmed)
            notify(Starting(str(warmed)))
        return planner, runner

    configured = partial(
        Agent,
        max_repairs=settings.agent.max_repairs,
        repair_answer_form=settings.agent.repair_answer_form,
        samples=settings.agent.samples,
        trace_dir=settings.trace_dir,
        student=student,
        parallel=settings.llm.parallel,
        deadline_s=settings.agent.deadline_s,
    )
    if settings.agent.mode == STUDENT:  # the planner and tools start with the first program
        return configured(program_path=program_path)
    return configured(*program_path(at_start=True))


@dataclass
class Budget:
    """One question's time budget (``agent.deadline_s``): a round starts only if, taking as
    long as the last one did, it ends within the budget. ``stopped`` says why one did not."""

    seconds: float | None
    started: float = field(default_factory=time.perf_counter)
    stopped: str | None = None

    def allows(self, round_s: float) -> bool:
        """Whether a round of ``round_s`` seconds, started now, ends within the budget."""
        if self.seconds is None:
            return True
        return time.perf_counter() - self.started + round_s <= self.seconds

    @property
    def ends_at(self) -> float | None:
        """When the budget ends (a ``time.perf_counter()`` value), or None."""
        return None if self.seconds is None else self.started + self.seconds

    def stop(self, what: str) -> None:
        """Record that ``what`` was not started for lack of time."""
        spent = time.perf_counter() - self.started
        self.stopped = f"the {self.seconds:g} s budget allowed no {what} ({spent:.1f} s spent)"
        log.info("deadline: %s", self.stopped)


class Agent:
    """Plans a program with an LLM, runs it in the sandbox, repairs it on failure.

    With ``samples`` > 1, that many programs are planned (the first at temperature 0, the rest
    sampled) and their answers put to a majority vote (self-consistency).
    """

    def __init__(
        self,
        planner: Planner | None = None,
        runner: ProgramRunner | None = None,
        *,
        program_path: Callable[[], tuple[Planner, ProgramRunner]] | None = None,
        max_repairs: int = 2,
        repair_answer_form: bool = False,
        samples: int = 1,
        trace_dir: Path | None = None,
        student: StudentAnswerer | None = None,
        parallel: int = 1,
        deadline_s: float | None = None,
    ) -> None:
        """Give ``planner`` and ``runner``, or ``program_path`` to build both on first use.

        ``parallel``: questions :meth:`ask_batch` asks at once (``llm.parallel``).
        ``deadline_s``: each question's time budget (:class:`Budget`); None: none.
        ``repair_answer_form``: re-plan a program whose answer does not fit the question's
        form (off: the fallback answers; ``agent.repair_answer_form``).
        """
        if (planner is None or runner is None) == (program_path is None):
            raise ValueError("give the agent a planner and a runner, or a program_path")
        self.student = student  # agent.student; answers first as agent.mode says (student_mode)
        self._planner, self._runner = planner, runner
        self._program_path = program_path
        self._building = threading.Lock()
        self.max_repairs = max_repairs
        self.repair_answer_form = repair_answer_form
        self.samples = samples
        self.trace_dir = trace_dir
        self.parallel = parallel
        self.deadline_s = deadline_s

    @property
    def program_path_started(self) -> bool:
        """Whether the planner and the tools are running (always, unless built lazily)."""
        return self._planner is not None

    def _started(self) -> tuple[Planner, ProgramRunner]:
        with self._building:
            if self._planner is None or self._runner is None:
                assert self._program_path is not None
                self._planner, self._runner = self._program_path()
            return self._planner, self._runner

    @property
    def planner(self) -> Planner:
        """The program planner (started now if it was deferred)."""
        return self._started()[0]

    @property
    def runner(self) -> ProgramRunner:
        """The sandboxed program runner and its tools (started now if deferred)."""
        return self._started()[1]

    def ask(
        self,
        image: ImageInput,
        question: str,
        *,
        choices: list[str] | None = None,
        marks: Sequence[Mark | dict[str, Any]] | None = None,
        on_event: EventCallback | None = None,
        mode: str | None = None,
        deadline_s: float | None = None,
    ) -> Result:
        """Answer ``question`` about ``image`` (a path, bytes, PIL image or numpy array).

        ``choices``: the options of a multiple-choice question; the answer is one of them.
        ``marks``: places the question names, as data: ``{"label": "A", "point": [x, y]}`` or
        ``{"label": "1", "box": [x0, y0, x1, y1]}`` in pixels ("What is at A?"); programs get
        them from ``image.marks()``. Bad input (an unreadable image, an empty question, a bad
        mark) raises ValueError; everything that goes wrong after that is reported in the
        Result, every attempt in ``Result.attempts``. ``on_event`` hears progress messages; it
        may raise :class:`vpagent.events.Cancelled` to stop the question at that step.
        ``deadline_s`` (default: the agent's): no repair round or further sample starts that
        would end past it, and a planner reply still being written then is cut; the answer so
        far (or the fallback's) returns unverified, and a ``deadline`` attempt says what was
        not tried.
        """
        question = validate_question(question)
        given = given_marks(marks)
        asked = with_marks(with_choices(question, choices), given)
        pixels = load_image(image)
        started = time.perf_counter()
        budget = Budget(deadline_s if deadline_s is not None else self.deadline_s, started)
        notify = on_event or ignore
        early = student_first(self.student, pixels, asked, notify, mode)  # agent.mode
        if early is not None:
            early.question, early.choices = question, choices
            return early
        on_tokens = _token_events(on_event) if on_event else None  # token events when heard
        outcomes = [self._solve(pixels, asked, 0, notify, on_tokens, budget, choices, given)]
        for sample in range(1, self.samples):
            if budget.stopped is not None:  # a repair was cut short: no time for more samples
                break
            if not budget.allows(_seconds(outcomes[0])):
                budget.stop(f"sample {sample + 1} of {self.samples}")
                outcomes[-1].attempts.append(_deadline_attempt(budget, sample, 0))
                break
            outcomes.append(
                self._solve(pixels, asked, sample, notify, on_tokens, budget, choices, given)
            )
        result = _vote(outcomes)
        result.attempts = [attempt for outcome in outcomes for attempt in outcome.attempts]
        if budget.stopped is not None and result.ok:
            result.verified = False
            result.unverified_reason = "; ".join(
                filter(None, [result.unverified_reason, budget.stopped])
            )
        if not result.ok:
            self._answer_anyway(pixels, asked, result, notify, budget.stopped)
        result.question, result.choices = question, choices
        result.timings["total_s"] = time.perf_counter() - started
        result.programs_tried = sum(o.programs_tried for o in outcomes)
        if result.trace is not None:
            result.trace.attempts = list(result.attempts)
            result.trace.timings.update(result.timings)
            if isinstance(image, str | Path):
                result.trace.image.source = str(image)
            if self.trace_dir is not None:
                save_trace(result.trace, self.trace_dir)
        return result

    def ask_batch(
        self, items: Iterable[tuple[ImageInput, str]], *, max_workers: int | None = None
    ) -> list[Result | ValueError]:
        """Answer many questions concurrently (``max_workers``, default: the agent's
        ``parallel``); bad items give their ValueError in place."""

        def one(item: tuple[ImageInput, str]) -> Result | ValueError:
            try:
                return self.ask(*item)
            except ValueError as error:
                return error

        with ThreadPoolExecutor(max_workers=max_workers or self.parallel) as pool:
            return list(pool.map(one, items))

    def live_attempts(
        self,
        pixels: np.ndarray,
        question: str,
        sample: int,
        notify: EventCallback | None = None,
        on_tokens: Callable[[int], None] | None = None,
        *,
        choices: list[str] | None = None,
        marks: Sequence[Mark] = (),
        budget: Budget | None = None,
    ) -> Iterator[LiveAttempt]:
        """The plan -> run -> repair loop of one sample: each program as it is run.

        ``question`` is the question as the planner reads it (:func:`with_choices`);
        ``choices`` its options, so that the answer's form is not checked against the text.

        Stops at the first program that runs, after ``max_repairs`` repairs, when a tool says
        it cannot answer (no new program changes what the tools see), when the answer's form
        does not fit the question and ``repair_answer_form`` is off, when planning fails
        (that run has ``failure`` set and no execution), or when ``budget`` has no time for
        another round or ends while the planner writes (``budget.stopped`` says so).
        ``Agent.ask`` and ``distill traces`` both consume it.
        """
        budget = budget or Budget(None)
        notify = notify or ignore
        notify(Planning(sample))
        started = time.perf_counter()
        try:
            plan = self.planner.plan(
                question, sample=sample, on_tokens=on_tokens, deadline=budget.ends_at
            )
        except PlanningFailed as failure:
            if isinstance(failure, OutOfTime):
                budget.stop("more of the planner's reply")
            log.warning("planning failed (sample %d): %s", sample, failure)
            yield LiveAttempt(sample, 0, time.perf_counter() - started, failure=failure)
            return
        plan_s = time.perf_counter() - started
        for repair in range(self.max_repairs + 1):
            notify(RunningProgram(repair + 1))
            started = time.perf_counter()
            execution, trace = self.runner.run(
                plan.program, pixels, question=question, choices=choices, marks=marks,
                on_event=notify,
            )  # fmt: skip
            run = LiveAttempt(sample, repair, plan_s, plan, execution, trace)
            run.execute_s = time.perf_counter() - started
            yield run
            if not execution.ok:
                log.info(
                    "program %d of sample %d failed (%s): %s",
                    repair + 1, sample, execution.error_kind, execution.error,
                )  # fmt: skip
            fixable = not run.unfixable and (
                execution.error_kind != FailureReason.ANSWER_FORM or self.repair_answer_form
            )
            if execution.ok or repair == self.max_repairs or not fixable:
                return
            if not budget.allows(run.plan_s + run.execute_s):
                budget.stop(f"repair of program {repair + 1} ({execution.error_kind})")
                return
            notify(Repairing(str(execution.error_kind)))
            started = time.perf_counter()
            try:
                plan = self.planner.repair(
                    plan,
                    execution.feedback(),
                    sample=sample,
                    on_tokens=on_tokens,
                    deadline=budget.ends_at,
                )
            except PlanningFailed as failure:
                if isinstance(failure, OutOfTime):
                    budget.stop("more of the repair's reply")
                log.warning("repair planning failed (sample %d): %s", sample, failure)
                yield LiveAttempt(
                    sample, repair + 1, time.perf_counter() - started, failure=failure
                )
                return
            plan_s = time.perf_counter() - started

    def _solve(
        self,
        pixels: np.ndarray,
        question: str,
        sample: int,
        notify: EventCallback,
        on_tokens: Callable[[int], None] | None,
        budget: Budget,
        choices: list[str] | None = None,
        marks: Sequence[Mark] = (),
    ) -> Result:
        """One sample's Result: its last program that ran, and every attempt (a ``deadline``
        one when the budget cut its repairs short); plan_s counts retrieval and LLM."""
        runs = list(
            self.live_attempts(
                pixels,
                question,
                sample,
                notify,
                on_tokens,
                choices=choices,
                marks=marks,
                budget=budget,
            )
        )
        timings = {
            "plan_s": sum(run.plan_s for run in runs),
            "execute_s": sum(run.execute_s for run in runs),
        }
        attempts = [run.attempt() for run in runs]
        if budget.stopped is not None:
            attempts.append(_deadline_attempt(budget, sample, runs[-1].repair + 1))
        executed = [run for run in runs if run.execution is not None]
        if not executed:
            failure = runs[0].failure
            return Result(
                question=question, error=str(failure), error_kind=FailureReason.PLANNING,
                attempts=attempts,
            )  # fmt: skip
        result = _result(question, executed[-1], timings, len(executed))
        result.attempts = attempts
        return result

    def _answer_anyway(
        self,
        pixels: np.ndarray,
        question: str,
        result: Result,
        notify: EventCallback,
        stopped: str | None = None,
    ) -> None:
        """No program answered: ask the VQA role about the whole image; mark it unverified.
        The fallback is the last of ``result.attempts``; ``stopped``: why the budget cut the
        repairs short, if it did."""
        notify(AnsweringWithoutProgram())
        started = time.perf_counter()
        fallback = Attempt(kind="fallback")
        failed = f"{result.error_kind}; {stopped}" if stopped else str(result.error_kind)
        try:
            result.answer, how = self.runner.answer_directly(pixels, question)
            result.unverified_reason = f"no program succeeded ({failed}); {how}"
            fallback.answer, fallback.message = result.answer, how
        except CannotAnswer as error:  # the VQA role has no answer: reported, not a fault
            result.unverified_reason = f"no program succeeded and no fallback answer: {error}"
            fallback.reason, fallback.message = FailureReason.CANNOT_ANSWER, str(error)
        except Exception as error:  # the fallback's own failure is reported, never raised
            log.exception("the fallback answer failed")
            result.unverified_reason = f"no program succeeded and no fallback answer: {error}"
            fallback.reason, fallback.message = FailureReason.TOOL_ERROR, describe_error(error)
            fallback.traceback = bounded_traceback(error)
        result.timings["fallback_s"] = fallback.execute_s = time.perf_counter() - started
        result.attempts.append(fallback)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _seconds(outcome: Result) -> float:
    """The planning and running time of one sample."""
    return outcome.timings.get("plan_s", 0.0) + outcome.timings.get("execute_s", 0.0)


def _deadline_attempt(budget: Budget, sample: int, repair: int) -> Attempt:
    """The record of a round the budget did not start."""
    return Attempt(
        sample=sample, repair=repair, reason=FailureReason.DEADLINE, message=budget.stopped
    )


def _result(question: str, run: LiveAttempt, timings: dict[str, float], tried: int) -> Result:
    assert run.plan is not None and run.execution is not None
    execution, guesses = run.execution, run.unverified
    return Result(
        question=question,
        answer=execution.answer,
        program=run.plan.program,
        trace=run.trace,
        timings=dict(timings),
        usage=dict(vars(run.plan.usage)),
        error=None if execution.ok else execution.feedback(),
        error_kind=execution.error_kind,
        programs_tried=tried,
        verified=execution.ok and not guesses,
        unverified_reason="; ".join(guesses) or None,
    )


def given_marks(marks: Sequence[Mark | dict[str, Any]] | None) -> list[Mark]:
    """Marks given as data, checked (ValueError names the bad one)."""
    found = []
    for index, mark in enumerate(marks or []):
        if isinstance(mark, Mark):
            found.append(mark)
            continue
        unknown = set(mark) - {"label", "point", "box"}
        if unknown:
            raise ValueError(f"mark {index}: unknown keys {sorted(unknown)}")
        try:
            found.append(Mark.given(str(mark.get("label", "")), mark.get("point"), mark.get("box")))
        except (TypeError, ValueError, ValidationError) as error:
            raise ValueError(f"mark {index}: {error}") from None
    return found


def with_marks(question: str, marks: Sequence[Mark]) -> str:
    """The question as the planner reads it: the given marks listed after it."""
    if not marks:
        return question
    listed = ", ".join(
        f"{m.label or 'unlabelled'} ({m.kind} at {m.point[0]:.0f}, {m.point[1]:.0f})" for m in marks
    )
    return f"{question} Marks on the image: {listed}."


def _token_events(notify: EventCallback) -> Callable[[int], None]:
    """Planner token counts as progress events."""
    return lambda count: notify(TokensWritten(count))


def _vote(outcomes: list[Result]) -> Result:
    """The most common answer wins; ties go to the earliest (temperature 0) sample."""
    answered = [o for o in outcomes if o.ok and o.answer is not None]
    if not answered:
        return outcomes[0]
    counts = Counter(normalize_answer(o.answer or "") for o in answered)
    best = max(counts.values())
    winner = next(o for o in answered if counts[normalize_answer(o.answer or "")] == best)
    winner.timings = {
        "plan_s": sum(o.timings.get("plan_s", 0.0) for o in outcomes),
        "execute_s": sum(o.timings.get("execute_s", 0.0) for o in outcomes),
    }
    winner.usage = dict(sum((Counter(o.usage) for o in outcomes), Counter()))
    return winner
