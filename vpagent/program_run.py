"""One program of the plan -> run -> repair loop, as :meth:`Agent.program_runs` yields it."""

from __future__ import annotations

from dataclasses import dataclass

from vpagent.planner import Plan, PlanningFailed
from vpagent.sandbox.result import ExecutionResult
from vpagent.trace.records import Trace


@dataclass
class ProgramRun:
    """A program of sample ``sample`` (``repair`` = 0: first plan) and how its run went.

    Planning that failed has ``failure`` set and no plan, execution or trace.
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
            step.error_kind == "cannot_answer" for step in self.trace.steps
        )
