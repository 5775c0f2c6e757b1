"""The form an answer must take when the question names its options ("left or right?").

A program that answers "Is the black dog to the left or to the right of the brown dog?" with
"whippet" has not answered the question, however well it ran; the agent treats such an answer
as a failed run and repairs the program with this check's message.
"""

from __future__ import annotations

import re

from vpagent.sandbox.result import ErrorKind, ExecutionResult

WORD_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")
TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*|\?")  # words, and "?" where a clause ends
# Words that surround options without being one ("to the left or to the right of").
LINKING = frozenset({"a", "an", "the", "to", "on", "in", "at", "of", "is", "are", "it", "its",
                     "this", "that", "more", "less", "than", "with", "by"})  # fmt: skip
# An option's words end where the question goes on about something else.
OPTION_END = frozenset({"of", "than", "in", "on", "at", "to", "with", "from", "?"})
OPTION_WORDS = 2  # each option is at most this many content words
YES_NO = frozenset({"yes", "no"})


def offered_options(question: str) -> list[str] | None:
    """The two options a question names around its last "or" ("left", "right"), or None."""
    choice = _choice(question)
    return None if choice is None else choice[0]


def answer_problem(question: str, answer: str) -> str | None:
    """Why ``answer`` does not answer a question that names its options, or None if it does.

    Accepted: an answer that shares a word with the words around the "or" (OPTION_WORDS on
    each side, so "red" for "Is it red, blue or green?"), or "yes"/"no" ("Is there a cat or a
    dog?" asks for either).
    """
    choice = _choice(question)
    if choice is None:
        return None
    options, accepted = choice
    if set(WORD_RE.findall(answer.lower())) & (accepted | YES_NO):
        return None
    return (
        f"the question asks to choose ({' or '.join(repr(o) for o in options)}), but the "
        f"program returned {answer!r}, which is neither: return one of the options"
    )


def _choice(question: str) -> tuple[list[str], set[str]] | None:
    """(the options as shown, every word an answer may use) for a question with an "or"."""
    tokens = TOKEN_RE.findall(question.lower())
    if "or" not in tokens:
        return None
    at = len(tokens) - 1 - tokens[::-1].index("or")
    before = [t for t in tokens[:at] if t not in LINKING and t != "?"][-OPTION_WORDS:]
    after: list[str] = []
    for token in tokens[at + 1 :]:
        if token in OPTION_END and after:
            break
        if token not in LINKING and token != "?":
            after.append(token)
        if len(after) == OPTION_WORDS:
            break
    if not before or not after:
        return None
    options = [" ".join(before[-len(after) :]), " ".join(after)]
    return options, {*before, *after}


def checked(question: str, execution: ExecutionResult) -> ExecutionResult:
    """``execution``, or a failed copy of it when its answer does not fit the question."""
    if not execution.ok or execution.answer is None:
        return execution
    problem = answer_problem(question, execution.answer)
    if problem is None:
        return execution
    return execution.model_copy(
        update={"ok": False, "error_kind": ErrorKind.RUNTIME, "error": problem}
    )
