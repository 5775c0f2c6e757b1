"""Answers must be of the kind the question asks for; right answers must never be rejected."""

from __future__ import annotations

import pytest

from vpagent.answer_form import answer_problem, checked
from vpagent.attempts import FailureReason
from vpagent.sandbox.result import ExecutionResult

RIGHT = [
    ("Is the dog to the left or to the right of the cat?", "Right."),
    ("Is the man on the left pointing or clapping?", "clapping"),
    ("Is the man wearing a hat or a cap?", "cap"),
    ("Which color is the car, red or blue?", "red"),
    ("Which is bigger, the dog or the cat?", "the cat"),
    ("Are these dogs or cats?", "dog"),
    ("Is it red, blue, green or white?", "red"),
    ("Is the table made of wood or metal?", "wooden"),
    ("Is this the man's or the woman's?", "woman"),
    ("Is there a cat or a dog in the image?", "yes"),
    ("How many cats or dogs are there?", "2"),
    ("What color is the car or truck?", "red"),
    ("Who is holding the bat or racket?", "the man"),
    ("Is there a cat?", "Yes."),
    ("Does the man look happy?", "no"),
    ("How many dogs are there?", "2"),
    ("How many dogs are there?", "none"),
    ("How many birds are there?", "thirteen"),
    ("What is the man doing?", "surfing"),
    ("What's the animal on the left?", "dog"),
    ("What number is on the jersey?", "10"),
    ("What is the total?", "12"),
    ("What is written on the sign?", "50"),
    ("Who is holding the bowl?", "the man"),
    ("Where is the cat?", "on the couch"),
    ("Is the dog left of the cat? Choose one of: left, right.", "left"),
    ("Which one is red? (A) the cup (B) the bowl", "B"),
    ("Describe the scene.", "2"),
    ("What number is the player wearing?", "23"),
    ("What time is it on the clock the man is holding?", "10"),
    ("What is the man holding?", "2 bananas"),
    ("What is written on the sign the man is holding?", "50"),
    ("What does the sign the man is holding say?", "50"),
    ("What bus is the man riding?", "42"),
    ("What page is the woman reading?", "12"),
    ("What size shoe is the man wearing?", "10"),
    ("Which player is holding the ball?", "23"),
    ("What platform is the man standing on?", "3"),
    ("What are the dogs carrying?", "nothing"),
    ("What is the man holding?", "none"),
]
WRONG = [
    ("Is the black dog to the left or to the right of the brown dog?", "whippet", "'left' or"),
    ("Is the truck facing left or right?", "", "'left' or 'right'"),
    ("Is there a cat?", "cat", "yes or no"),
    ("How many dogs are there?", "dog", "a number"),
    ("What animal is looking at the bowl?", "1", "the thing asked for"),
    ("What color is the bus?", "no", "the thing asked for"),
    ("What is the man holding?", "", "the thing asked for"),
    ("What are the dogs carrying?", "0", "the thing asked for"),
    ("What is the woman on the left doing?", "1", "the thing asked for"),
    ("What is the girl holding in her hand?", "2", "the thing asked for"),
    ("What animal is looking at the bowl?", "one", "the thing asked for"),
    ("Who is on the bench?", "Two", "the thing asked for"),
]


@pytest.mark.parametrize(("question", "answer"), RIGHT)
def test_right_answers_pass(question: str, answer: str) -> None:
    assert answer_problem(question, answer) is None


@pytest.mark.parametrize(("question", "answer", "says"), WRONG)
def test_misfits_are_named(question: str, answer: str, says: str) -> None:
    problem = answer_problem(question, answer)
    assert problem is not None and says in problem


def test_checked_turns_a_wrong_form_into_a_failure_and_keeps_the_rest() -> None:
    question = "Is the truck facing left or right?"
    run = ExecutionResult(ok=True, answer="whippet", stdout="printed", duration_s=0.5)
    failed = checked(question, run)
    assert not failed.ok and failed.error_kind is FailureReason.ANSWER_FORM
    assert "'whippet'" in (failed.error or "") and failed.stdout == "printed"
    good = ExecutionResult(ok=True, answer="right")
    assert checked(question, good) is good
