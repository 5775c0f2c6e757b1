"""The form an answer must take: one of the options a question names ("left or right?"),
"yes"/"no" for a yes/no question, a number for "how many", and for the rest neither yes/no nor,
where a category ("what color", "what animal", "who") or what someone is holding, doing, ...
("what is the man holding?") is asked for, a bare number.

A program that answers "Is the black dog to the left or to the right of the brown dog?" with
"whippet", or "What animal is looking at the bowl?" with "1", has not answered the question,
however well it ran; the runner reports such an answer as an ``answer_form`` failure with this
check's message, and the fallback answers (or, with ``agent.repair_answer_form``, the planner
re-plans with the message). The check is lenient on purpose: rejecting a right answer costs
the answer itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vpagent.attempts import FailureReason
from vpagent.sandbox.result import ExecutionResult

TOKEN_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[?,:]")  # words, and the marks clauses end on
# Words that surround options without being one ("to the left or to the right of").
LINKING = frozenset({"a", "an", "the", "to", "on", "in", "at", "of", "is", "are", "it", "its",
                     "this", "that", "these", "those", "more", "less", "than", "with",
                     "by"})  # fmt: skip
MARKS = frozenset({"?", ",", ":"})
OPTION_END = frozenset({"of", "than", "in", "on", "at", "to", "with", "from"}) | MARKS
OPTION_WORDS = 2  # each option is shown as at most this many content words
STEM = 4  # an answer word matches a question word that shares this many first letters
YES_NO = frozenset({"yes", "no"})
YES_NO_STARTS = frozenset({"is", "are", "was", "were", "does", "do", "did", "can", "could",
                           "has", "have", "had", "will", "would", "should"})  # fmt: skip
WH_STARTS = frozenset({"what", "which", "who", "whose", "where"})
# "What color ...", "what animal ...", "who ...": a category, never a bare number.
CATEGORY_CUES = frozenset({"who", "whose", "color", "colour", "animal", "kind", "type", "sort",
                           "sport", "fruit", "vegetable", "vehicle", "food", "material",
                           "shape", "breed", "gender", "room", "weather", "season"})  # fmt: skip
# "What is the man holding?", "What are the dogs doing?": when "what" is the object of the
# question's own verb, a thing or an action is asked for, never a bare number, unless something
# numeric or written is ("What number is he wearing?", "What is written on the sign he is
# holding?"). "What bus is he riding?" and "which player ..." ask for a name: left alone.
ACTION_CUES = frozenset({"holding", "carrying", "doing", "wearing", "eating", "drinking",
                         "playing", "riding", "using", "reading", "watching", "throwing",
                         "catching", "pulling", "pushing", "chasing", "looking", "sitting",
                         "standing", "lying", "hanging", "walking", "flying"})  # fmt: skip
AUXILIARIES = frozenset({"is", "are", "was", "were", "does", "do", "did"})
ACTION_AT_END = 4  # the verb is among the question's last words ("... holding in her hand?")
NUMERIC_CUES = frozenset({"number", "numbers", "time", "year", "age", "score", "price", "digit",
                          "digits", "speed", "temperature", "percent", "written", "say", "says",
                          "read", "sign", "text"})  # fmt: skip
NUMBER_WORDS = frozenset({"zero", "none", "no", "one", "two", "three", "four", "five", "six",
                          "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen",
                          "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                          "twenty", "thirty", "forty", "fifty", "hundred", "hundreds", "dozen",
                          "dozens", "several", "many", "few", "lots"})  # fmt: skip
NUMBER_RE = re.compile(r"^\d+(?:[.,]\d+)?$")
# A count in words ("one"), which answers no category or action question either; "none" may
# ("What is he holding?" "none"), and "no" is a yes/no answer.
CARDINALS = NUMBER_WORDS - {"none", "no", "several", "many", "few", "lots", "dozen", "dozens",
                            "hundreds"}  # fmt: skip
# A question typed with its choices ("... Choose one of: ...", "(A) ... (B) ...") is answered
# from that list, in whatever form the list suggests: no form is imposed on it. Choices given
# as data (``Agent.ask(..., choices=[...])``) are not looked for in the text.
CHOICE_LIST_RE = re.compile(r"choose one of\s*:|options\s*:|choices\s*:|\([a-d]\)", re.I)


def answer_problem(
    question: str, answer: str, choices: Sequence[str] | None = None, shown: str | None = None
) -> str | None:
    """Why ``answer`` is not an answer of the kind ``question`` asks for, or None if it is.
    ``shown``: how the message names what the program returned (default: ``answer`` quoted).

    A multiple-choice question (``choices``, or options listed in its text) is answered from
    its options in whatever form they suggest: no form is imposed.

    A question that offers options ("Is it A or B?", "Which is bigger, A or B?") takes an
    answer that shares a word with the question (any of several options, "wooden" for "wood";
    so an answer naming something else the question mentions passes too) or "yes"/"no" ("Is
    there a cat or a dog?"). Otherwise: "is", "are", "does", ... take "yes"
    or "no"; "how many" a number; "what", "which", "who", ... not a bare yes/no, and not a bare
    number where they ask for a category ("what color", "what animal", "who") or for what
    someone is holding, doing, wearing, ... ("what is/are ... holding?"), unless something
    numeric or written is asked for ("what number ...", "what is written ...").
    """
    if choices or CHOICE_LIST_RE.search(question):
        return None
    shown = shown or repr(answer)
    tokens = _tokens(question)
    words = [t for t in _tokens(answer) if t not in MARKS]
    if not tokens:
        return None
    options = _offered(tokens)
    if options is not None:
        asked = [t for t in tokens if t not in MARKS and t not in LINKING]
        if any(word in YES_NO or _matches(word, asked) for word in words):
            return None
        return (
            f"the question asks to choose ({' or '.join(repr(o) for o in options)}), but the "
            f"program returned {shown}, which is neither: return one of the options"
        )
    if tokens[0] in YES_NO_STARTS:
        if words[:1] and words[0] in YES_NO:
            return None
        return f"this is a yes/no question, but the program returned {shown}: return yes or no"
    if tokens[:2] == ["how", "many"]:
        if any(NUMBER_RE.match(word) or word in NUMBER_WORDS for word in words):
            return None
        return f"the question asks how many, but the program returned {shown}: return a number"
    if tokens[0] in WH_STARTS:
        bare = len(words) == 1 and (
            words[0] in YES_NO or (_is_count(words[0]) and _asks_for_a_thing(tokens))
        )
        if bare or not words:
            return (
                f"the question asks {tokens[0]} ..., but the program returned {shown}: "
                "return the thing asked for, in a word or two"
            )
    return None


def checked(
    question: str, execution: ExecutionResult, choices: Sequence[str] | None = None
) -> ExecutionResult:
    """``execution``, or a failed copy of it when its answer does not fit the question."""
    if not execution.ok or execution.answer is None:
        return execution
    problem = answer_problem(question, execution.answer, choices)
    if problem is None:
        return execution
    return execution.model_copy(
        update={"ok": False, "error_kind": FailureReason.ANSWER_FORM, "error": problem}
    )


def names_a_number(question: str) -> bool:
    """Whether ``question`` has a number among its words ("Are there 3 or 4 dogs?")."""
    return any(_is_count(token) for token in _tokens(question))


def _is_count(word: str) -> bool:
    """A number in digits ("2", "1.5") or a cardinal in words ("one")."""
    return bool(NUMBER_RE.match(word)) or word in CARDINALS


def _asks_for_a_thing(tokens: list[str]) -> bool:
    """Whether a wh-question asks for a category ("what color", "who") or for a thing or an
    action ("what is the man holding?"), to which a bare number is no answer."""
    if CATEGORY_CUES.intersection(tokens[:4]):
        return True
    words = [t for t in tokens if t not in MARKS]
    return (
        words[:1] == ["what"]
        and len(words) > 1
        and words[1] in AUXILIARIES
        and bool(ACTION_CUES.intersection(words[-ACTION_AT_END:]))
        and not NUMERIC_CUES.intersection(words)
    )


def _tokens(text: str) -> list[str]:
    """Lower-case words ("what's" -> "what", "woman's" -> "woman") and clause marks."""
    return [token.removesuffix("'s") for token in TOKEN_RE.findall(text.lower())]


def _matches(word: str, asked: list[str]) -> bool:
    """Whether an answer word is one of the question's words, up to plural or ending."""
    return any(
        word.removesuffix("s") == other.removesuffix("s")
        or (len(word) >= STEM and len(other) >= STEM and word[:STEM] == other[:STEM])
        for other in asked
    )


def _offered(tokens: list[str]) -> list[str] | None:
    """The two options, as shown, of a question that offers a choice with its last "or": a
    yes/no-opening question ("Is it A or B?") or one whose options follow a comma or colon
    ("Which is bigger, the dog or the cat?"). None for an "or" inside a noun phrase ("How many
    cats or dogs are there?")."""
    if "or" not in tokens:
        return None
    at = len(tokens) - 1 - tokens[::-1].index("or")
    listed = any(mark in tokens[:at] for mark in (",", ":"))
    if tokens[0] not in YES_NO_STARTS and not listed:
        return None
    before = [t for t in tokens[:at] if t not in LINKING and t not in MARKS]
    after: list[str] = []
    for token in tokens[at + 1 :]:
        if token in OPTION_END and after:
            break
        if token not in LINKING and token not in MARKS:
            after.append(token)
        if len(after) == OPTION_WORDS:
            break
    if not before or not after:
        return None
    return [" ".join(before[-len(after) :]), " ".join(after)]
