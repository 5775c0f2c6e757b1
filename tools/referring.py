"""Referring expressions: "the black dog", "man in the black coat" -> what to detect and what
must be true of it.

A closed-vocabulary detector finds every dog for "black dog": the colour is dropped when the
name is mapped to a class. The program host then detects the noun and ranks the dogs by the
property the name asks for (``vpagent.tools.program_host``), with the matcher's graded evidence. An
open-vocabulary detector reads the whole phrase itself and gets it unchanged.

What counts as a property here is what the matchers can check: colour words before the noun
("black", "dark blue", "black-and-white"), hair ("gray-haired"), and a trailing clause that
starts with "in", "with", "wearing", "who", ... and names a colour, a body part or something
worn ("in the black coat", "with a red collar", "wearing a tie"). Other clauses say where the
thing is or what it is with ("dog in the car", "man with a dog"): they stay part of the noun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vpagent.tools.offline.colors import COLOR_WORDS
from vpagent.tools.offline.parts import PART_WORDS

WORD_RE = re.compile(r"[a-z0-9]+(?:-haired)?(?:'[a-z]+)?")
ARTICLES = frozenset({"a", "an", "the", "some"})
CLAUSE_STARTS = frozenset({"in", "with", "wearing", "who", "that", "which"})
CLAUSE_FILLER = frozenset({"who", "that", "which", "is", "are", "has", "have", "in", "with"})
SHADES = frozenset({"dark", "light", "bright", "pale"})  # before a colour: "dark blue"


@dataclass(frozen=True)
class Reference:
    """A noun phrase split into the thing to detect and the property it must have."""

    noun: str
    attribute: str | None = None


def split_reference(name: str) -> Reference:
    """``Reference("dog", "black")`` for "the black dog"; no attribute when none is found."""
    words = [w for w in _words(name) if w not in ARTICLES]
    clause: list[str] = []
    for index, word in enumerate(words):
        if index > 0 and word in CLAUSE_STARTS:
            words, clause = words[:index], words[index:]
            break
    if clause and not any(_checkable(word) or word == "wearing" for word in clause):
        words, clause = words + clause, []  # "dog in the car": where it is, not what it has
    leading: list[str] = []
    while len(words) > 1 and _leading_attribute(words):
        leading.append(words.pop(0))
        if len(words) > 2 and words[0] == "and" and _leading_attribute(words[1:]):
            words.pop(0)  # "red and white bus": both colours
    clause = [w for w in clause if w not in CLAUSE_FILLER and w not in ARTICLES]
    attribute = " ".join([*leading, *clause])
    return Reference(noun=" ".join(words), attribute=attribute or None)


def _words(name: str) -> list[str]:
    """Lower-case words; hyphens split ("black-and-white") except in "gray-haired"."""
    text = re.sub(r"-(?!haired\b)", " ", name.lower())
    return [word.removesuffix("'s") for word in WORD_RE.findall(text)]


def _leading_attribute(words: list[str]) -> bool:
    """Whether the phrase opens with an attribute: a colour, a shade of one, or hair."""
    first = words[0]
    if first in SHADES:
        return len(words) > 1 and words[1] in COLOR_WORDS
    return first in COLOR_WORDS or first.endswith("haired")


def _checkable(word: str) -> bool:
    """A colour, or a body part or something worn (what a matcher checks on a person)."""
    return word in COLOR_WORDS or word in PART_WORDS or word.endswith("haired")
