"""The form an answer must take: one of the options a question names ("left or right?"),
"yes"/"no" for a yes/no question, a number for "how many", and not a bare number or yes/no for
"what ...".

A program that answers "Is the black dog to the left or to the right of the brown dog?" with
"whippet", or "What animal is looking at the bowl?" with "1", has not answered the question,
however well it ran; the agent treats such an answer as a failed run and repairs the program
with this check's message.
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
YES_NO_STARTS = frozenset({"is", "are", "was", "were", "does", "do", "did", "can", "could",
                           "has", "have", "had", "will", "would", "should"})  # fmt: skip
WH_STARTS = frozenset({"what", "which", "who", "whose", "where"})
# "What number / time / year ..." asks for a number after all.
NUMERIC_CUES = frozenset({"number", "numbers", "time", "year", "age", "price", "score",
                          "temperature", "speed", "digit", "digits", "date", "percent",
                          "percentage", "many", "much"})  # fmt: skip
NUMBER_WORDS = frozenset({"zero", "none", "no", "one", "two", "three", "four", "five", "six",
                          "seven", "eight", "nine", "ten", "eleven", "twelve"})  # fmt: skip
# A question that lists its choices ("Choose one of: ...", "(A) ... (B) ...") is answered
# from that list, in whatever form the list suggests: no form is imposed on it.
CHOICE_LIST_RE = re.compile(r"choose one of\s*:|options\s*:|choices\s*:|\([a-d]\)", re.I)
NUMBER_RE = re.compile(r"^\d+(?:[.,]\d+)?$")


def offered_options(question: str) -> list[str] | None:
    """The two options a question names around its last "or" ("left", "right"), or None."""
    choice = _choice(question)
    return None if choice is None else choice[0]


def answer_problem(question: str, answer: str) -> str | None:
    """Why ``answer`` is not an answer of the kind ``question`` asks for, or None if it is.

    A question that names options takes an answer sharing a word with the words around its
    "or" (OPTION_WORDS on each side, so "red" for "Is it red, blue or green?") or "yes"/"no"
    ("Is there a cat or a dog?" asks for either). Otherwise: a question opening with "is",
    "are", "does", ... takes "yes" or "no"; "how many" a number; "what", "which", "who", ...
    anything but a bare number (unless it asks for a number, time, year, ...) or yes/no.
    """
    if CHOICE_LIST_RE.search(question):
        return None
    words = WORD_RE.findall(answer.lower())
    choice = _choice(question)
    if choice is not None:
        options, accepted = choice
        if set(words) & (accepted | YES_NO):
            return None
        return (
            f"the question asks to choose ({' or '.join(repr(o) for o in options)}), but the "
            f"program returned {answer!r}, which is neither: return one of the options"
        )
    opening = WORD_RE.findall(question.lower())
    if not opening:
        return None
    if opening[0] in YES_NO_STARTS:
        if words[:1] and words[0] in YES_NO:
            return None
        return f"this is a yes/no question, but the program returned {answer!r}: return yes or no"
    if opening[:2] == ["how", "many"]:
        if any(NUMBER_RE.match(w) or w in NUMBER_WORDS for w in words):
            return None
        return f"the question asks how many, but the program returned {answer!r}: return a number"
    if opening[0] in WH_STARTS and not NUMERIC_CUES.intersection(opening):
        bare = len(words) == 1 and (NUMBER_RE.match(words[0]) or words[0] in YES_NO)
        if bare or not words:
            return (
                f"the question asks {opening[0]} ..., but the program returned {answer!r}: "
                "return the thing asked for, in a word or two"
            )
    return None


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
