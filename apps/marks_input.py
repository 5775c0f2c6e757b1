"""Marks a person puts on the photo in the app: clicks become points (A, B, ...) or boxes (1, 2,
...), kept as editable text, one mark a line: ``A: 120, 200`` or ``1: 10, 20, 110, 90``."""

from __future__ import annotations

import string

from vpagent.tools.types import Mark


def parse_marks(text: str | None) -> list[Mark]:
    """The marks in the text box; ValueError naming the line a person got wrong."""
    marks = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        label, colon, rest = line.partition(":")
        try:
            values = [float(v) for v in rest.replace(",", " ").split()]
        except ValueError:
            values = []
        if not colon or not label.strip() or len(values) not in (2, 4):
            raise ValueError(
                f"mark line {number} ({line.strip()!r}) is not 'A: x, y' or '1: x0, y0, x1, y1'"
            )
        if len(values) == 2:
            marks.append(Mark.given(label.strip(), point=values))
        else:
            marks.append(Mark.given(label.strip(), box=values))
    return marks


def add_click(
    text: str | None, x: float, y: float, box_mode: bool, corner: list[float] | None
) -> tuple[str, list[float] | None]:
    """The text with a click added: a point with the next free letter, or in box mode the first
    corner kept (returned) until the second click closes a box with the next free number."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    used = {line.partition(":")[0].strip().upper() for line in lines}
    if box_mode:
        if corner is None:
            return "\n".join(lines), [x, y]
        label = next(str(n) for n in range(1, 100) if str(n) not in used)
        x0, x1 = sorted((corner[0], x))
        y0, y1 = sorted((corner[1], y))
        lines.append(f"{label}: {x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}")
        return "\n".join(lines), None
    label = next((c for c in string.ascii_uppercase if c not in used), f"P{len(lines) + 1}")
    lines.append(f"{label}: {x:.0f}, {y:.0f}")
    return "\n".join(lines), None
