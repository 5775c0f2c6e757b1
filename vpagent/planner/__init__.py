"""The planner: question -> program, with retrieved few-shot examples and a repair loop."""

from vpagent.planner.examples import Example, ExampleRetriever, load_examples
from vpagent.planner.extract import NoProgramFound, extract_program
from vpagent.planner.planner import CaughtInLoop, OutOfTime, Plan, Planner, PlanningFailed

__all__ = [
    "CaughtInLoop",
    "Example",
    "ExampleRetriever",
    "NoProgramFound",
    "OutOfTime",
    "Plan",
    "Planner",
    "PlanningFailed",
    "extract_program",
    "load_examples",
]
