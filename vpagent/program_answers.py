"""The answers a program can return, read from its source before it runs.

Many wrong-form programs show their mistake in their ``return`` lines: ``return "yes" if found
else "no"`` for "What are the dogs carrying?", ``return str(len(animals))`` for "What animal
is looking at the bowl?". Running one costs its tool calls (seconds of VQA on the embedded
pack) before :mod:`vpagent.answer_form` rejects its answer. :func:`form_problem` finds the
program whose every ``return`` can give only answers of the wrong form, so that the fallback
(or a repair) starts at once. A ``return`` whose value is not known from the source (a tool's
answer, a variable) can give anything: a program with one is never rejected here, nor is one
the sandbox's own check rejects (that check names its fault).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Sequence

from vpagent.answer_form import YES_NO, answer_problem, names_a_number
from vpagent.sandbox.policy import ProgramRejected, check_program, entry_points

NUMBER = "\x00number"  # stands for any number a program computes (len, count)
NUMBER_EXAMPLE = "2"  # what the answer check is shown for it
# ImagePatch methods whose value is known by its kind: a count, or a bool.
COUNTING = frozenset({"count"})
CHECKING = frozenset({"exists", "verify_property"})


def returned_answers(node: ast.expr) -> frozenset[str] | None:
    """The answers a returned expression can become, or None when the source does not say
    (a computed number stands as :data:`NUMBER`)."""
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
    if not isinstance(node, ast.Call) or node.keywords or len(node.args) > 1:
        return None
    func = node.func
    if isinstance(func, ast.Name) and func.id == "len":
        return frozenset({NUMBER})
    if isinstance(func, ast.Name) and func.id == "str" and node.args:
        return _as_text(node.args[0])
    if isinstance(func, ast.Attribute) and func.attr in COUNTING:
        return frozenset({NUMBER})
    if isinstance(func, ast.Attribute) and func.attr in CHECKING:
        return YES_NO  # the sandbox answers a bool as yes/no
    return None


def _as_text(node: ast.expr) -> frozenset[str] | None:
    """What ``str(node)`` can be: a bool becomes "True"/"False" there, not yes/no."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool):
        return frozenset({str(node.value)})
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CHECKING
    ):
        return frozenset({"True", "False"})
    return returned_answers(node)


def entry_returns(source: str) -> list[ast.Return]:
    """The ``return`` statements of ``execute_command`` itself (the last one defined, as
    Python keeps; not of functions, lambdas or classes inside it); empty for a program the
    sandbox's check rejects."""
    try:
        tree = check_program(source).tree
    except ProgramRejected:
        return []
    try:
        entry = entry_points(tree)[-1]
        return [node for node in _own_nodes(entry.body) if isinstance(node, ast.Return)]
    except RecursionError:  # deeper than the walk can go: leave it to the run
        return []


def _own_nodes(statements: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of ``statements``, not entering a function, lambda or class defined there."""
    for statement in statements:
        yield from _walk(statement)


def _walk(node: ast.AST) -> Iterator[ast.AST]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
        return
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _walk(child)


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
    if NUMBER in answers and names_a_number(question):
        return None  # "Are there 3 or 4 dogs?": a computed number may be one of them
    shown = " or ".join("a number" if a == NUMBER else repr(a) for a in sorted(answers))
    problems = [
        answer_problem(question, NUMBER_EXAMPLE if a == NUMBER else a, choices, shown)
        for a in sorted(answers)
    ]
    if any(problem is None for problem in problems):
        return None
    return f"{problems[0]} (read from its return lines: it was not run)", returns[0].lineno
