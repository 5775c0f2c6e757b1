"""A program whose every return gives an answer of the wrong form is caught before it runs."""

from __future__ import annotations

import pytest

from vpagent.program_answers import form_problem


def program(*lines: str) -> str:
    return "def execute_command(image):\n" + "".join(f"    {line}\n" for line in lines)


@pytest.mark.parametrize(
    ("question", "source"),
    [
        (
            "What are the dogs carrying?",
            program(
                "dogs = image.find('dog')",
                "carrying = [d for d in dogs if d.verify_property('dog', 'carrying')]",
                "return 'yes' if carrying else 'no'",
            ),
        ),
        ("What animal is looking at the bowl?", program("return str(len(image.find('cat')))")),
        ("What color is the bus?", program("return image.exists('bus')")),
        ("Is there a cat?", program("if image.exists('cat'):", "    return 1", "return 0")),
        ("How many cats are there?", program("return 'yes' if image.exists('cat') else 'cat'")),
        (
            "What is the man holding?",
            program("def inner():", "    return 'phone'", "return 'yes' if inner() else 'no'"),
        ),
        ("Is there a cat?", program("return str(image.exists('cat'))")),  # "True", not "yes"
        ("Is the cup on the left or the right?", program("return image.count('cup')")),
    ],
)
def test_a_program_that_can_only_answer_in_the_wrong_form_is_caught(
    question: str, source: str
) -> None:
    found = form_problem(question, source)
    assert found is not None
    message, line = found
    assert "it was not run" in message
    assert source.splitlines()[line - 1].strip().startswith(("return", "if"))


def test_the_message_names_every_answer_the_program_can_give() -> None:
    found = form_problem("What is the man holding?", program("return 'yes' if 1 else 'no'"))
    assert found is not None
    assert "'no' or 'yes'" in found[0] and "return the thing asked for" in found[0]
    found = form_problem("What animal is it?", program("return len(image.find('dog'))"))
    assert found is not None and "returned a number" in found[0]


@pytest.mark.parametrize(
    ("question", "source"),
    [
        # a tool's answer, or a variable: the source does not say what it is
        ("What are the dogs carrying?", program("return image.simple_query('What?')")),
        ("What animal is it?", program("name = 'cat'", "return name")),
        # one return may fit: the run decides
        (
            "What is the man holding?",
            program("if not image.exists('man'):", "    return 'no'", "return 'phone'"),
        ),
        ("How many cats are there?", program("return str(len(image.find('cat')))")),
        ("Is there a cat?", program("return 'yes' if image.exists('cat') else 'no'")),
        ("Is the cat black or white?", program("return 'black' if 1 else 'white'")),
        ("What number is on the bus?", program("return str(len(image.find('bus')))")),
        ("Are there 3 or 4 dogs?", program("return len(image.find('dog'))")),
        ("Are there two or three dogs?", program("return str(image.count('dog'))")),
        ("What is on the table?", program("return str(image.exists('cup'))")),
    ],
)
def test_a_program_that_may_answer_in_the_right_form_runs(question: str, source: str) -> None:
    assert form_problem(question, source) is None


def test_the_message_tells_a_written_number_from_a_computed_one() -> None:
    found = form_problem("What animal is it?", program("return '2'"))
    assert found is not None and "returned '2'" in found[0]


def test_the_last_entry_point_defined_is_the_one_read() -> None:
    twice = program("return image.simple_query('What?')") + program("return 'no'")
    assert form_problem("What is on the table?", twice) is not None


def test_only_the_entry_points_own_returns_count() -> None:
    source = "def helper(x):\n    return 'yes'\n" + program(
        "key = lambda p: 'no'", "def inner():", "    return 'no'", "return inner()"
    )
    assert form_problem("What is on the table?", source) is None


def test_choices_given_as_data_impose_no_form() -> None:
    source = program("return 'yes'")
    assert form_problem("What is on the table?", source, choices=["yes", "no"]) is None


UNPARSED = "def execute_command(image:\n    return 'no'"
NO_ENTRY_POINT = "def other(image):\n    return 'no'"
UNSAFE = program("import os", "return 'no'")  # the sandbox rejects it, naming the import
WITH_NUL = program("return 'no'") + "\x00"


@pytest.mark.parametrize("source", ["", UNPARSED, NO_ENTRY_POINT, UNSAFE, WITH_NUL])
def test_a_program_the_sandbox_rejects_is_left_to_it(
    source: str,
) -> None:
    assert form_problem("What is on the table?", source) is None
