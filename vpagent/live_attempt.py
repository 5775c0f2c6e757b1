"""One program of the plan -> run -> repair loop, as :meth:`Agent.live_attempts` yields it."""

from __future__ import annotations

from dataclasses import dataclass

from vpagent.attempts import MAX_REPLY_CHARS, Attempt, FailureReason
from vpagent.planner import Plan, PlanningFailed
from vpagent.sandbox.result import ExecutionResult
from vpagent.trace.records import Trace


@dataclass
class LiveAttempt:
    """A program of sample ``sample`` (``repair`` = 0: first plan) and how its run went.

    Planning that failed has ``failure`` set and no plan, execution or trace. The live form of
    an :class:`~vpagent.attempts.Attempt` (:meth:`attempt` is what is kept of it).
    """

    sample: int
    repair: int
    plan_s: float
    plan: Plan | None = None
    execution: ExecutionResult | None = None
    trace: Trace | None = None
    failure: PlanningFailed | None = None
    execute_s: float = 0.0

    @property
    def unverified(self) -> list[str]:
        """The steps whose tool guessed instead of checking (``step N (tool): why``)."""
        if self.trace is None:
            return []
        return [
            f"step {step.index} ({step.tool}): {step.artifacts.unverified}"
            for step in self.trace.steps
            if step.artifacts.unverified is not None
        ]

    @property
    def unfixable(self) -> bool:
        """A tool said it cannot answer (CannotAnswer): no re-plan changes what tools can see."""
        return self.trace is not None and any(
            step.error_kind == FailureReason.CANNOT_ANSWER for step in self.trace.steps
        )

    def attempt(self) -> Attempt:
        """The record kept of this run: program, answer or why none, tool calls, timings."""
        if self.failure is not None or self.execution is None or self.plan is None:
            replies = self.failure.replies if self.failure is not None else []
            return Attempt(
                sample=self.sample,
                repair=self.repair,
                reason=FailureReason.PLANNING,
                message=str(self.failure),
                reply=replies[-1].reply[:MAX_REPLY_CHARS] if replies else None,
                plan_s=self.plan_s,
            )
        execution = self.execution
        return Attempt(
            sample=self.sample,
            repair=self.repair,
            program=self.plan.program,
            answer=execution.answer,
            reason=execution.error_kind,
            message=execution.error,
            line=execution.line,
            traceback=execution.traceback,
            steps=[step.model_dump(exclude={"artifacts"}) for step in execution.steps],
            unverified=self.unverified,
            plan_s=self.plan_s,
            execute_s=self.execute_s,
        )
