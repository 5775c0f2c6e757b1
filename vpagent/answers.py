"""The two normal forms of an answer, in one place.

- :func:`normalize_answer` keeps the answer's words (lower case, trimmed, no final full stop):
  the form votes are counted in and labels are exported in.
- :func:`normalize` is the VQA evaluation's form (no punctuation or articles, number words as
  digits): the form answers are scored in. "Two dogs." and "2 dogs" differ in the first and
  match in the second.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = {"a", "an", "the"}
PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!*#%^&$:|~']")
PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def normalize(answer: str) -> str:
    """The VQA evaluation's normal form: lower case, no punctuation or articles, digits."""
    text = PERIOD.sub("", PUNCTUATION.sub(" ", answer.lower().strip()))
    words = [NUMBER_WORDS.get(word, word) for word in text.split() if word not in ARTICLES]
    return " ".join(words)


def normalize_answer(answer: str) -> str:
    """Lower-case, trimmed, without a final full stop: the form answers are voted in."""
    return answer.strip().rstrip(".").strip().lower()


def with_choices(question: str, choices: Sequence[str] | None) -> str:
    """The question as the planner, the student and the fallback read it: a multiple-choice
    question's options appended ("... Choose one of: left, right."); the only place the
    options become text."""
    if choices:
        return f"{question} Choose one of: {', '.join(choices)}."
    return question
