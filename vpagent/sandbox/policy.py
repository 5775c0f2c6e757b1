"""Static allow-list check of a program's AST, and the rewrite that guards big arithmetic.

This is the first of two layers: it rejects programs that reach for Python's introspection
machinery before anything runs. The second layer (a separate, rlimited, unprivileged process)
contains whatever this check misses.
"""

from __future__ import annotations

import ast
import warnings
from typing import NamedTuple

from vpagent.sandbox.limits import (
    MAX_AST_NODES,
    MAX_INT_LITERAL_DIGITS,
    MAX_SOURCE_CHARS,
    MAX_STRING_LITERAL_CHARS,
)

ENTRY_POINT = "execute_command"

# The importable modules and, for each, the only names a program sees. An allow-list, not
# "everything public": re-exported helpers are gadgets (functools.update_wrapper copies any
# attribute by name, statistics re-exports operator.mul, which skips the repetition guard).
ALLOWED_MODULE_MEMBERS: dict[str, frozenset[str]] = {
    "math": frozenset(
        {
            "acos", "acosh", "asin", "asinh", "atan", "atan2", "atanh", "cbrt", "ceil", "comb",
            "copysign", "cos", "cosh", "degrees", "dist", "e", "erf", "erfc", "exp", "exp2",
            "expm1", "fabs", "factorial", "floor", "fmod", "frexp", "fsum", "gamma", "gcd",
            "hypot", "inf", "isclose", "isfinite", "isinf", "isnan", "isqrt", "lcm", "ldexp",
            "lgamma", "log", "log10", "log1p", "log2", "modf", "nan", "nextafter", "perm", "pi",
            "pow", "prod", "radians", "remainder", "sin", "sinh", "sqrt", "sumprod", "tan",
            "tanh", "tau", "trunc", "ulp",
        }
    ),
    "statistics": frozenset(
        {
            "NormalDist", "StatisticsError", "correlation", "covariance", "fmean",
            "geometric_mean", "harmonic_mean", "linear_regression", "mean", "median",
            "median_grouped", "median_high", "median_low", "mode", "multimode", "pstdev",
            "pvariance", "quantiles", "stdev", "variance",
        }
    ),
    "itertools": frozenset(
        {
            "accumulate", "batched", "chain", "combinations", "combinations_with_replacement",
            "compress", "count", "cycle", "dropwhile", "filterfalse", "groupby", "islice",
            "pairwise", "permutations", "product", "repeat", "starmap", "takewhile", "tee",
            "zip_longest",
        }
    ),
    "collections": frozenset(
        {
            "ChainMap", "Counter", "OrderedDict", "UserDict", "UserList", "UserString",
            "defaultdict", "deque",
        }
    ),
    "re": frozenset(
        {
            "A", "ASCII", "DOTALL", "I", "IGNORECASE", "M", "MULTILINE", "NOFLAG", "S", "U",
            "UNICODE", "VERBOSE", "X", "Match", "Pattern", "compile", "error", "escape",
            "findall", "finditer", "fullmatch", "match", "search", "split", "sub", "subn",
        }
    ),
    "string": frozenset(
        {
            "ascii_letters", "ascii_lowercase", "ascii_uppercase", "capwords", "digits",
            "hexdigits", "octdigits", "printable", "punctuation", "whitespace",
        }
    ),
    "functools": frozenset({"cache", "cmp_to_key", "lru_cache", "partial", "reduce"}),
}  # fmt: skip

ALLOWED_IMPORTS: frozenset[str] = frozenset(ALLOWED_MODULE_MEMBERS)

FORBIDDEN_NAMES: frozenset[str] = frozenset(
    {
        "eval", "exec", "compile", "open", "getattr", "setattr", "delattr", "hasattr",
        "globals", "locals", "vars", "dir", "type", "object", "super", "memoryview",
        "breakpoint", "input", "help", "exit", "quit", "format", "classmethod",
        "staticmethod", "property", "bytearray", "id", "callable",
    }
)  # fmt: skip

# Attributes that lead from ordinary objects to frames, code, or the class graph.
FORBIDDEN_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "format", "format_map", "mro", "gi_frame", "gi_code", "gi_yieldfrom", "gi_running",
        "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await",
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
        "with_traceback", "func_globals", "im_func", "im_self",
    }
)  # fmt: skip
FORBIDDEN_ATTRIBUTE_PREFIXES = ("_", "co_")

# The one name starting with '_' a program may use: the conventional throwaway variable.
THROWAWAY_NAME = "_"

# Node types a program may contain. Anything else (class, global, async, yield, match,
# try-star, type aliases...) is rejected with its name in the message.
ALLOWED_NODES: tuple[type[ast.AST], ...] = (
    ast.Module, ast.FunctionDef, ast.Lambda, ast.arguments, ast.arg, ast.Return,
    ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.While, ast.If, ast.With,
    ast.withitem, ast.Raise, ast.Try, ast.ExceptHandler, ast.Assert, ast.Import,
    ast.ImportFrom, ast.alias, ast.Expr, ast.Pass, ast.Break, ast.Continue, ast.Delete,
    ast.BoolOp, ast.NamedExpr, ast.BinOp, ast.UnaryOp, ast.IfExp, ast.Dict, ast.Set,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.Compare, ast.Call, ast.keyword, ast.FormattedValue, ast.JoinedStr, ast.Constant,
    ast.Attribute, ast.Subscript, ast.Starred, ast.Name, ast.List, ast.Tuple, ast.Slice,
    ast.Load, ast.Store, ast.Del, ast.And, ast.Or, ast.Add, ast.Sub, ast.Mult, ast.Div,
    ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift, ast.RShift, ast.BitOr, ast.BitXor,
    ast.BitAnd, ast.MatMult, ast.Invert, ast.Not, ast.UAdd, ast.USub, ast.Eq, ast.NotEq,
    ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In, ast.NotIn,
)  # fmt: skip

# Binary operators whose result size can explode; rewritten into guarded helper calls.
GUARDED_OPERATORS: dict[type[ast.operator], str] = {
    ast.Pow: "_vp_pow",
    ast.Mult: "_vp_mul",
    ast.LShift: "_vp_lshift",
}


class ProgramRejected(ValueError):
    """The program failed the static check; ``line`` points at the offending node."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class CheckedProgram(NamedTuple):
    """A program that passed the check (a NamedTuple: the worker skips importing dataclasses)."""

    source: str
    tree: ast.Module


def _reject(node: ast.AST | None, message: str) -> ProgramRejected:
    return ProgramRejected(message, getattr(node, "lineno", None))


class _PolicyVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.node_count = 0

    def generic_visit(self, node: ast.AST) -> None:
        self.node_count += 1
        if self.node_count > MAX_AST_NODES:
            raise _reject(node, f"program is too large (more than {MAX_AST_NODES} AST nodes)")
        if not isinstance(node, ALLOWED_NODES):
            raise _reject(node, f"'{type(node).__name__}' statements are not allowed")
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        _check_identifier(node, node.id)
        if node.id in FORBIDDEN_NAMES:
            raise _reject(node, f"'{node.id}' is not available in programs")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        if name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES) or name in FORBIDDEN_ATTRIBUTES:
            raise _reject(node, f"attribute '.{name}' is not allowed")
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        _check_identifier(node, node.name)
        if node.decorator_list:
            raise _reject(node, "decorators are not allowed")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        _check_identifier(node, node.arg)
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            _check_identifier(node, node.arg)
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name is not None:
            _check_identifier(node, node.name)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            _check_module(node, alias.name)
            if alias.asname:
                _check_identifier(node, alias.asname)
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or node.module is None:
            raise _reject(node, "relative imports are not allowed")
        _check_module(node, node.module)
        for alias in node.names:
            if alias.name == "*":
                raise _reject(node, "'from ... import *' is not allowed")
            _check_identifier(node, alias.name)
            _check_module_member(node, node.module, alias.name)
            if alias.asname:
                _check_identifier(node, alias.asname)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str | bytes) and len(value) > MAX_STRING_LITERAL_CHARS:
            raise _reject(node, f"string literal longer than {MAX_STRING_LITERAL_CHARS} chars")
        if isinstance(value, int) and abs(value).bit_length() > MAX_INT_LITERAL_DIGITS * 4:
            raise _reject(node, f"integer literal longer than {MAX_INT_LITERAL_DIGITS} digits")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if type(node.op) in GUARDED_OPERATORS and not isinstance(node.target, ast.Name):
            raise _reject(node, "augmented '*=', '**=', '<<=' only work on plain names")
        self.generic_visit(node)


def _check_identifier(node: ast.AST, name: str) -> None:
    if name.startswith("_") and name != THROWAWAY_NAME:
        raise _reject(node, f"names starting with '_' are not allowed ('{name}')")


def _check_module(node: ast.AST, module: str) -> None:
    if module not in ALLOWED_IMPORTS:
        allowed = ", ".join(sorted(ALLOWED_IMPORTS))
        raise _reject(node, f"import of '{module}' is not allowed (allowed: {allowed})")


def _check_module_member(node: ast.AST, module: str, name: str) -> None:
    if name not in ALLOWED_MODULE_MEMBERS[module]:
        raise _reject(node, f"'{module}.{name}' is not available in programs")


class _ArithmeticGuard(ast.NodeTransformer):
    """Rewrites ``a ** b``, ``a * b``, ``a << b`` (and their augmented forms) into guarded calls."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = GUARDED_OPERATORS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(ast.Name(guard, ast.Load()), [node.left, node.right], [])
        return ast.copy_location(call, node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        guard = GUARDED_OPERATORS.get(type(node.op))
        if guard is None:
            return node
        target = node.target
        assert isinstance(target, ast.Name)  # enforced by the policy check
        value = ast.Call(
            ast.Name(guard, ast.Load()), [ast.Name(target.id, ast.Load()), node.value], []
        )
        return ast.copy_location(ast.Assign([ast.Name(target.id, ast.Store())], value), node)


def check_program(source: str) -> CheckedProgram:
    """Parse and check ``source``; raise :class:`ProgramRejected` with a clear reason."""
    if not isinstance(source, str) or not source.strip():
        raise ProgramRejected("the program is empty")
    if len(source) > MAX_SOURCE_CHARS:
        raise ProgramRejected(f"the program is longer than {MAX_SOURCE_CHARS} characters")
    if "\x00" in source:
        raise ProgramRejected("the program contains a NUL character")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes warn; they are no error here
            tree = ast.parse(source, filename="<program>", mode="exec")
    except SyntaxError as error:
        raise ProgramRejected(f"syntax error: {error.msg}", error.lineno) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ProgramRejected(f"the program cannot be parsed: {error}") from None
    try:
        _PolicyVisitor().visit(tree)
    except RecursionError:
        raise ProgramRejected("the program is nested too deeply") from None
    entry = entry_points(tree)
    if not entry:
        raise ProgramRejected(f"the program must define 'def {ENTRY_POINT}(image):'")
    if len(entry[0].args.args) != 1:
        raise ProgramRejected(f"'{ENTRY_POINT}' must take exactly one argument (the image)")
    _check_compiles(tree)
    return CheckedProgram(source=source, tree=tree)


def entry_points(tree: ast.Module) -> list[ast.FunctionDef]:
    """Every top-level ``def execute_command``, in source order (Python keeps the last)."""
    return [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == ENTRY_POINT
    ]


def _check_compiles(tree: ast.Module) -> None:
    """Reject what parses but does not compile ('break' outside a loop, a repeated argument
    name): the worker would otherwise die compiling it, with no report."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning ("is" with a literal) is no error
            compile(tree, "<program>", "exec", dont_inherit=True)
    except SyntaxError as error:
        raise ProgramRejected(f"syntax error: {error.msg}", error.lineno) from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ProgramRejected(f"the program cannot be compiled: {error}") from None


def harden(program: CheckedProgram) -> ast.Module:
    """Return a copy of the checked tree with big-arithmetic guards inserted."""
    tree = ast.parse(program.source, filename="<program>", mode="exec")
    guarded: ast.Module = _ArithmeticGuard().visit(tree)  # visit() returns Any
    return ast.fix_missing_locations(guarded)
