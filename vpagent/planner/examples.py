"""The few-shot example bank and its retrieval by question similarity."""

from __future__ import annotations

import threading
import tomllib
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

EXAMPLES_FILE = Path(__file__).with_name("examples.toml")
FORM_WORDS = 2  # questions that open alike ("how many", "what color") share a program shape
FORM_BONUS = 0.3

Embed = Callable[[Sequence[str]], np.ndarray]
"""Texts -> (n, d) unit-length embeddings."""


class Example(BaseModel):
    """A question and a hand-checked program that answers it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    question: str
    program: str
    prefix: bool = False  # curated for the static prompt prefix


def load_examples(path: Path = EXAMPLES_FILE) -> list[Example]:
    """Read the example bank (a TOML file of ``[[example]]`` tables)."""
    with open(path, "rb") as handle:
        tables = tomllib.load(handle).get("example", [])
    return [Example(**{**table, "program": table["program"].strip() + "\n"}) for table in tables]


def load_banks(extra: Sequence[Path] = ()) -> list[Example]:
    """The built-in bank followed by each extra bank (e.g. from ``vpagent distill examples``)."""
    examples = load_examples()
    for path in extra:
        if not Path(path).is_file():
            raise FileNotFoundError(f"example bank {path} does not exist")
        examples.extend(load_examples(Path(path)))
    return examples


def fixed_examples(examples: Sequence[Example], n: int) -> list[Example]:
    """``n`` examples for the static prompt prefix: the curated ones, then one of each kind in turn.

    Examples marked ``prefix`` come first, in bank order. Past them the rest are taken
    round-robin over kinds (in order of first appearance), so a longer prefix shows every
    program shape before it shows a second example of any.
    """
    chosen = [example for example in examples if example.prefix][:n]
    by_kind: dict[str, list[Example]] = {}
    for example in examples:
        if not example.prefix:
            by_kind.setdefault(example.kind, []).append(example)
    for rank in range(max((len(group) for group in by_kind.values()), default=0)):
        for group in by_kind.values():
            if len(chosen) < n and rank < len(group):
                chosen.append(group[rank])
    return chosen


def _form(question: str) -> tuple[str, ...]:
    return tuple(question.lower().split()[:FORM_WORDS])


def default_embed() -> Embed:
    """all-MiniLM-L6-v2 from the offline pack (loads on first use)."""
    from vpagent.tools.offline.text_embed import shared_embedder

    return shared_embedder().encode


class ExampleRetriever:
    """Picks the examples most similar to the user's question.

    Similarity is MiniLM cosine plus a bonus for questions that open with the same words,
    since those usually need programs of the same shape.
    """

    def __init__(self, examples: list[Example], embed: Embed | None = None) -> None:
        if not examples:
            raise ValueError("the example bank is empty")
        self.examples = examples
        self._embed = embed
        self._matrix: np.ndarray | None = None
        self._lock = threading.Lock()

    def _bank(self) -> tuple[Embed, np.ndarray]:
        with self._lock:
            if self._embed is None:
                self._embed = default_embed()
            if self._matrix is None:
                self._matrix = self._embed([e.question for e in self.examples])
            return self._embed, self._matrix

    def top(self, question: str, k: int, exclude: Collection[Example] = ()) -> list[Example]:
        """The ``k`` most similar examples not in ``exclude``, most similar last."""
        if k <= 0:
            return []
        embed, matrix = self._bank()
        form = _form(question)
        bonus = np.array([FORM_BONUS * (_form(e.question) == form) for e in self.examples])
        scores = matrix @ embed([question])[0] + bonus
        ranked = [i for i in np.argsort(-scores, kind="stable") if self.examples[i] not in exclude]
        return [self.examples[i] for i in reversed(ranked[:k])]
