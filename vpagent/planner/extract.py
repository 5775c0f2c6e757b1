"""Getting a program out of an LLM reply: fenced or bare code, never prose."""

from __future__ import annotations

import re

from vpagent.sandbox.policy import ENTRY_POINT

FENCE = re.compile(
    r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL | re.IGNORECASE
)
ENTRY = re.compile(rf"^def {ENTRY_POINT}\s*\(", re.MULTILINE)
CODE_START = re.compile(r"^(?:import |from \S+ import |def )")


class NoProgramFound(ValueError):
    """The reply holds no ``def execute_command(image):``."""


def extract_program(reply: str) -> str:
    """Return the code that defines the entry point, from a fenced block or bare text."""
    blocks = [block for block in FENCE.findall(reply) if ENTRY.search(block)]
    if blocks:
        return blocks[-1].strip() + "\n"
    match = ENTRY.search(reply)
    if match is None:
        raise NoProgramFound(
            f"the reply contains no program: write Python code that defines "
            f"'def {ENTRY_POINT}(image):' and nothing else"
        )
    lines = reply[: match.start()].splitlines()
    start = len(lines)
    while start > 0 and _looks_like_code(lines[start - 1]):
        start -= 1  # keep imports and helper functions written just above the entry point
    while start < len(lines) and not CODE_START.match(lines[start]):
        start += 1
    head = "\n".join(lines[start:]).strip()
    body = _until_prose(reply[match.start() :])
    return (head + "\n" if head else "") + body


def _looks_like_code(line: str) -> bool:
    return (
        not line.strip()
        or line[0].isspace()
        or line.startswith("#")
        or bool(CODE_START.match(line))
    )


def _until_prose(code: str) -> str:
    """Cut trailing prose: stop at the first unindented line that is not code."""
    kept: list[str] = []
    for index, line in enumerate(code.splitlines()):
        unindented_text = index > 0 and line.strip() and not line[0].isspace()
        if unindented_text and not CODE_START.match(line) and not line.startswith(("#", "@")):
            break
        kept.append(line)
    return "\n".join(kept).rstrip() + "\n"
