"""Multiple-choice text: options written inside a question, and letter answers like "(B)"."""

from __future__ import annotations

import re

_MARKER = re.compile(r"\(([A-Za-z])\)")
_IMAGE_TAG = re.compile(r"<img\s[^>]*>", re.IGNORECASE)
_LEAD_IN = re.compile(
    r"\s*(select from the following choices\.?|options\s*:|choices\s*:)\s*$", re.IGNORECASE
)
_LETTER_ALONE = re.compile(r"^\s*\(?([A-Za-z])\)?\s*[.:]?\s*$")
_LETTER_FIRST = re.compile(r"^\s*\(([A-Za-z])\)")


def strip_image_tags(text: str) -> str:
    """Remove ``<img src=...>`` placeholders (Visual Sketchpad puts them in its queries)."""
    return _IMAGE_TAG.sub("", text).strip()


def split_options(text: str) -> tuple[str, list[str]] | None:
    """``(question, options)`` from text ending in "(A) first (B) second ...", else None.

    The options are the last run of markers (A), (B), ... (any case, in order, at least two);
    a lead-in such as "Select from the following choices." or "Options:" is dropped.
    """
    markers = list(_MARKER.finditer(text))
    for start in range(len(markers) - 1, -1, -1):
        if markers[start].group(1).lower() != "a":
            continue
        run = [markers[start]]
        for marker in markers[start + 1 :]:
            if marker.group(1).lower() == chr(ord(run[-1].group(1).lower()) + 1):
                run.append(marker)
        if len(run) < 2:
            continue
        ends = [marker.start() for marker in run[1:]] + [len(text)]
        options = [text[m.end() : end].strip() for m, end in zip(run, ends, strict=True)]
        if not all(options):
            continue
        question = _LEAD_IN.sub("", text[: run[0].start()]).strip()
        return question, options
    return None


def letter_index(text: str, n_choices: int) -> int | None:
    """The choice a letter answer names: "B", "(b)", "B.", "(B) no"; None if it names none."""
    match = _LETTER_ALONE.match(text) or _LETTER_FIRST.match(text)
    if match is None:
        return None
    index = ord(match.group(1).lower()) - ord("a")
    return index if 0 <= index < n_choices else None


def resolve_answer(answer: str, choices: list[str]) -> str | None:
    """The text of the correct choice from a letter ("(B)") or the choice's own text."""
    index = letter_index(answer, len(choices))
    if index is not None:
        return choices[index]
    matches = [choice for choice in choices if choice.strip().lower() == answer.strip().lower()]
    return matches[0] if matches else None
