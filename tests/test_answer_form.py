"""Answers to questions that name their options must be one of them."""

from __future__ import annotations

import pytest

from vpagent.answer_form import answer_problem, checked, offered_options
from vpagent.sandbox.result import ErrorKind, ExecutionResult


@pytest.mark.parametrize(
    ("question", "options"),
    [
        ("Is the black dog to the left or to the right of the brown dog?", ["left", "right"]),
        ("Is the man on the left pointing or clapping?", ["pointing", "clapping"]),
        ("Are the boats on water or on grass?", ["water", "grass"]),
        ("Is the shirt dark blue or light green?", ["dark blue", "light green"]),
        ("Who is taller, the man or the woman?", ["man", "woman"]),
        ("How many dogs are there?", None),
        ("Or?", None),
    ],
)
def test_offered_options(question: str, options: list[str] | None) -> None:
    assert offered_options(question) == options


@pytest.mark.parametrize(
    ("question", "answer", "accepted"),
    [
        ("Is the dog to the left or to the right of the cat?", "Right.", True),
        ("Is the dog to the left or to the right of the cat?", "whippet", False),
        ("Is the dog to the left or to the right of the cat?", "", False),
        ("Is it red, blue or green?", "red", True),
        ("Is there a cat or a dog in the image?", "yes", True),
        ("Is there a cat?", "Yes.", True),
        ("Is there a cat?", "cat", False),
        ("How many dogs are there?", "2", True),
        ("How many dogs are there?", "none", True),
        ("How many dogs are there?", "yes", False),
        ("What animal is looking at the bowl?", "dog", True),
        ("What animal is looking at the bowl?", "1", False),
        ("What color is the bus?", "no", False),
        ("What color is the bus?", "", False),
        ("What number is on the jersey?", "10", True),
        ("Who is holding the bowl?", "the man", True),
        ("Is the dog left of the cat? Choose one of: left, right.", "left", True),
        ("Which one is red? (A) the cup (B) the bowl", "B", True),
        ("Describe the scene.", "2", True),  # no form this check knows
    ],
)
def test_answer_problem(question: str, answer: str, accepted: bool) -> None:
    assert (answer_problem(question, answer) is None) is accepted


def test_checked_turns_a_wrong_form_into_a_runtime_failure_and_keeps_the_rest() -> None:
    question = "Is the truck facing left or right?"
    run = ExecutionResult(ok=True, answer="truck", stdout="printed", duration_s=0.5)
    failed = checked(question, run)
    assert not failed.ok and failed.error_kind is ErrorKind.RUNTIME
    assert "'truck'" in (failed.error or "") and failed.stdout == "printed"
    good = ExecutionResult(ok=True, answer="right")
    assert checked(question, good) is good
