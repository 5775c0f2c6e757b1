"""The tool registry names no backend above the tools: the trained student registers itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from vpagent.student.backend import StudentCaptioner, StudentVQA, register_student_backends
from vpagent.tools import registry
from vpagent.tools.registry import backend_class, register_backend

REGISTRY = Path(registry.__file__)


def test_the_registry_names_only_tools_modules() -> None:
    named = [
        node.value
        for node in ast.walk(ast.parse(REGISTRY.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and ":" in node.value
        and node.value.startswith("vpagent.")
    ]  # fmt: skip
    assert named and all(target.startswith("vpagent.tools.") for target in named)


def test_the_student_registers_itself_from_above() -> None:
    register_student_backends()
    assert backend_class("vqa", "student") is StudentVQA
    assert backend_class("captioner", "student") is StudentCaptioner


def test_registering_for_an_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        register_backend("oracle", "student", StudentVQA)
