"""Referring expressions: "the black dog", "man in the black coat" -> what to detect and what
must be true of it.

A closed-vocabulary detector finds every dog for "black dog": the colour is dropped when the
name is mapped to a class. The program host then ranks the dogs by the property the name
asks for (``tools.program_host``), with the matcher's graded evidence. An open-vocabulary
detector reads the whole phrase itself and gets it unchanged.

What counts as a property here is what the matchers can check: colour words before the noun
("black", "dark-blue" is two words), hair ("gray-haired"), and a trailing clause that starts
with "in", "with" or "wearing" ("in the black coat", "with a red collar", "wearing a tie").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tools.offline.colors import COLOR_WORDS

WORD_RE = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
ARTICLES = frozenset({"a", "an", "the", "some"})
CLAUSE_STARTS = frozenset({"in", "with", "wearing", "who", "that", "which"})
CLAUSE_FILLER = frozenset({"who", "that", "which", "is", "are", "has", "have"})


@dataclass(frozen=True)
class Reference:
    """A noun phrase split into the thing to detect and the property it must have."""

    noun: str
    attribute: str | None = None


def split_reference(name: str) -> Reference:
    """``Reference("dog", "black")`` for "the black dog"; no attribute when none is found."""
    words = [w for w in WORD_RE.findall(name.lower()) if w not in ARTICLES]
    clause: list[str] = []
    for index, word in enumerate(words):
        if index > 0 and word in CLAUSE_STARTS:
            words, clause = words[:index], words[index:]
            break
    leading: list[str] = []
    while len(words) > 1 and _is_attribute_word(words[0]):
        leading.append(words.pop(0))
        if len(words) > 2 and words[0] == "and" and _is_attribute_word(words[1]):
            words.pop(0)  # "red and white bus": both colours
    clause = [w for w in clause if w not in CLAUSE_FILLER and w not in ARTICLES]
    if clause and clause[0] in {"in", "with"}:
        clause = clause[1:]
    attribute = " ".join([*leading, *clause])
    return Reference(noun=" ".join(words), attribute=attribute or None)


def _is_attribute_word(word: str) -> bool:
    return word in COLOR_WORDS or word.endswith("-haired") or word == "haired"
