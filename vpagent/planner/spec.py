"""The program API as the planner reads it: one line per function, from the docstrings.

The docstrings of ``tools/image_patch.py`` stay the single source of truth; this renders them
compactly (signature + the docstring's first paragraph, no usage examples: the few-shot examples
show usage), because every prompt token costs planning time on a CPU.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from vpagent.tools.image_patch import ImagePatch, build_program_api


def _summary(function: Callable[..., Any] | type) -> str:
    """The docstring's first paragraph on one line."""
    doc = inspect.getdoc(function) or ""
    paragraph = doc.split("\n\n", 1)[0]
    lines = [line.strip() for line in paragraph.splitlines() if not line.startswith(">>>")]
    return " ".join(line for line in lines if line)


def _line(function: Callable[..., Any], indent: str) -> str:
    signature = str(inspect.signature(function)).replace("'", "")
    return f"{indent}def {function.__name__}{signature}: ...  # {_summary(function)}"


def _methods() -> list[Callable[..., Any]]:
    """Public methods in definition order; aliases (``beside = next_to``) are left out."""
    return [
        member
        for name, member in vars(ImagePatch).items()
        if not name.startswith("_") and callable(member) and member.__name__ == name
    ]


def _free_functions() -> list[Callable[..., Any]]:
    _, functions = build_program_api(lambda tool, args: None, {"id": "", "width": 1, "height": 1})
    return list(functions.values())


def compact_spec() -> str:
    """``class ImagePatch`` and the free functions, one commented line each."""
    class_doc = " ".join(line.strip() for line in (inspect.getdoc(ImagePatch) or "").splitlines())
    lines = [f"class ImagePatch:  # {class_doc}"]
    lines += [_line(method, "    ") for method in _methods()]
    lines += [_line(function, "") for function in _free_functions()]
    return "\n".join(lines)
