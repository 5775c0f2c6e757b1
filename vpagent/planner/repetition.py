"""Spotting a model reply that has started to repeat itself, so it can be cut at once.

A small model decoding greedily can fall into a loop (``"baseball bat", "baseball bat", ...``)
and write until its token limit: ~12 s of a 2-core machine for nothing. The loop shows as soon
as the reply's tail is one piece of text several times over.
"""

from __future__ import annotations

MAX_UNIT_CHARS = 64
"""Longest repeating piece looked for (a list item, a call, a short line)."""

MIN_SPAN_CHARS = 48
"""Shortest repeated stretch that counts, so ``[None, None, None, None]`` in real code does not."""


def repeated_unit(text: str, times: int) -> str | None:
    """The piece of text that ``text`` ends with at least ``times`` times in a row, or None.

    Only pieces of two or more different characters count (indentation, ``))))`` or a
    ``# ------`` rule are not loops), and a short piece must fill :data:`MIN_SPAN_CHARS`
    characters with its repeats.
    """
    if times < 2:
        raise ValueError(f"times must be at least 2, got {times}")
    for size in range(1, MAX_UNIT_CHARS + 1):
        repeats = max(times, -(-MIN_SPAN_CHARS // size))
        if size * repeats > len(text):
            continue
        unit = text[-size:]
        if len(set(unit)) > 1 and unit.strip() and text.endswith(unit * repeats):
            return unit
    return None
