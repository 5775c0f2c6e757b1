"""The answers a program can return, read from its source before it runs.

Many wrong-form programs show their mistake in their ``return`` lines: ``return "yes" if found
else "no"`` for "What are the dogs carrying?", ``return str(len(animals))`` for "What animal
is looking at the bowl?". Running one costs its tool calls (seconds of VQA on the embedded
pack) before :mod:`vpagent.answer_form` rejects its answer. :func:`form_problem` finds the
program whose every ``return`` can give only answers of the wrong form, so that the fallback
(or a repair) starts at once. A ``return`` whose value is not known from the source (a tool's
answer, a variable) can give anything: a program with one is never rejected here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from vpagent.answer_form import answer_problem
from vpagent.sandbox.policy import ENTRY_POINT

NUMBER = "2"  # stands for any number a program computes (len, count)
YES_NO = frozenset({"yes", "no"})  # what a bool becomes as an answer
# ImagePatch methods whose value is known by its kind: a count, or a bool.
COUNTING = frozenset({"count"})
CHECKING = frozenset({"exists", "verify_property"})


def returned_answers(node: ast.expr) -> frozenset[str] | None:
    """The answers a returned expression can become, or None when the source does not say
    (a number stands as :data:`NUMBER`)."""
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool):
            return frozenset({"yes" if value else "no"})
        if isinstance(value, str | int | float):
            return frozenset({str(value)})
        return None
    if isinstance(node, ast.IfExp):
        body, orelse = returned_answers(node.body), returned_answers(node.orelse)
        return body | orelse if body is not None and orelse is not None else None
    if isinstance(node, ast.Call) and not node.keywords and len(node.args) <= 1:
        func = node.func
        if isinstance(func, ast.Name) and func.id == "len":
            return frozenset({NUMBER})
        if isinstance(func, ast.Name) and func.id == "str" and node.args:
            return returned_answers(node.args[0])
        if isinstance(func, ast.Attribute) and func.attr in COUNTING:
            return frozenset({NUMBER})
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return YES_NO if node.func.attr in CHECKING else None
    return None


def entry_returns(source: str) -> list[ast.Return]:
    """The ``return`` statements of ``execute_command`` itself (not of functions or lambdas
    inside it); empty if the source does not parse or defines no entry point."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT:
            return list(_returns(node.body))
    return []


def _returns(statements: list[ast.stmt]) -> Iterator[ast.Return]:
    for statement in statements:
        for node in _walk_skipping_functions(statement):
            if isinstance(node, ast.Return):
                yield node


def _walk_skipping_functions(node: ast.AST) -> Iterator[ast.AST]:
    yield node
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk_skipping_functions(child)


def form_problem(
    question: str, source: str, choices: Sequence[str] | None = None
) -> tuple[str, int] | None:
    """Why no answer ``source`` can return fits ``question``, and the line of its first
    ``return``; None when some ``return`` may give a fitting answer (or one's value is not
    known from the source)."""
    returns = entry_returns(source)
    if not returns:
        return None
    answers: set[str] = set()
    for statement in returns:
        known = returned_answers(statement.value) if statement.value is not None else None
        if known is None:
            return None
        answers |= known
    shown = " or ".join("a number" if a == NUMBER else repr(a) for a in sorted(answers))
    problems = [answer_problem(question, answer, choices, shown) for answer in sorted(answers)]
    if any(problem is None for problem in problems):
        return None
    return f"{problems[0]} (read from its return lines: it was not run)", returns[0].lineno
