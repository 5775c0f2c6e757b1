"""A hypothesis strategy for hostile Python programs, built as ASTs and unparsed to source.

Biased to what sandbox escapes are made of: attribute chains (over the members of every object
a program can hold, and over dunders and frame/code attributes), forbidden builtins, nested
functions with decorators, comprehensions with walrus targets, f-strings with conversions and
nested format specs, huge literals, ``match``, and statements the compiler (not the parser)
refuses (``break`` outside a loop, duplicate arguments). The grammar leans to what the policy
check accepts (about two thirds of ``function_bodies`` pass), so the accepted ones exercise the
worker; :func:`mutate` then makes each program hostile in one random place (a dunder, a
forbidden name, a decorator, ``match``, a stray ``break``, a character of noise).
"""

from __future__ import annotations

import ast
import collections
import functools
import math
import random
import re
import statistics
import string

from hypothesis import strategies as st

from vpagent.sandbox.policy import (
    ALLOWED_MODULE_MEMBERS,
    FORBIDDEN_ATTRIBUTES,
    FORBIDDEN_NAMES,
    MAX_INT_LITERAL_DIGITS,
    MAX_STRING_LITERAL_CHARS,
)
from vpagent.tools.image_patch import ImagePatch

LOCALS = ["a", "b", "n", "x", "items", "patch", "text", "_"]
SAFE_NAMES = [
    *LOCALS,
    "image",
    "llm_query",
    "print",
    "pow",
    "len",
    "str",
    "int",
    "list",
    "dict",
    "sorted",
    "max",
    "min",
    "sum",
    "range",
    "repr",
    "iter",
    "next",
    "isinstance",
    "issubclass",
    "hash",
    "slice",
    "frozenset",
    "Exception",
    "ValueError",
    "map",
    "zip",
    "enumerate",
    "filter",
    "reversed",
    "ascii",
    "chr",
    "ord",
    "tuple",
    "set",
]
RISKY_NAMES = [
    *sorted(FORBIDDEN_NAMES),
    "__builtins__",
    "__import__",
    "__build_class__",
    "_vp_pow",
    "_vp_mul",
    "__name__",
    "__loader__",
    "__spec__",
    "_private",
    "os",
    "sys",
    "builtins",
    "ModuleView",
    "HostChannel",
    "namespace",
]
DUNDERS = [
    "__class__",
    "__base__",
    "__bases__",
    "__mro__",
    "__subclasses__",
    "__globals__",
    "__builtins__",
    "__dict__",
    "__code__",
    "__closure__",
    "__self__",
    "__func__",
    "__init__",
    "__getattribute__",
    "__reduce_ex__",
    "__wrapped__",
    "__module__",
    "__traceback__",
    "__context__",
    "__cause__",
    "__call__",
    "__defaults__",
    "__kwdefaults__",
    "__loader__",
    "__spec__",
    "__objclass__",
    "__qualname__",
]
OPERATORS = [
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.Pow,
    ast.LShift,
    ast.RShift,
    ast.BitOr,
    ast.BitXor,
    ast.BitAnd,
    ast.MatMult,
]
COMPARISONS = [
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Is,
    ast.IsNot,
    ast.In,
    ast.NotIn,
]
DISALLOWED_MODULES = [
    "os",
    "sys",
    "io",
    "gc",
    "inspect",
    "ctypes",
    "builtins",
    "importlib",
    "subprocess",
    "types",
    "operator",
    "pickle",
    "code",
    "socket",
]
FORMAT_SPECS = ["", ">10", "^{}", "x", ".3f", "!r", "*<4", ",", "{}{}", "0>{}"]
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .%{}:!*,-", max_size=12)


def _public_members(*objects: object) -> set[str]:
    return {name for value in objects for name in dir(value) if not name.startswith("_")}


# Every attribute name a program's objects answer to: the gadget surface of an attribute chain.
PUBLIC_ATTRIBUTES = sorted(
    _public_members(
        "",
        0,
        0.5,
        1j,
        b"",
        [],
        (),
        {},
        set(),
        frozenset(),
        range(1),
        slice(1),
        ImagePatch,
        math,
        statistics,
        re,
        string,
        functools,
        collections.Counter(),
        collections.deque(),
        collections.ChainMap(),
        collections.OrderedDict(),
        collections.UserString(""),
        statistics.NormalDist(),
        functools.partial(len),
        functools.lru_cache(len),
        re.compile("a"),
        re.match("a", "a"),
        ValueError(),
        iter([]),
        map(len, []),
    )
    | {member for members in ALLOWED_MODULE_MEMBERS.values() for member in members}
)
FRAME_ATTRIBUTES = [*sorted(FORBIDDEN_ATTRIBUTES), "co_code", "co_consts"]
# Mostly attributes a program may use (so most programs pass the check and run), some that
# it may not; mutate() adds more of those.
ATTRIBUTES = st.sampled_from(PUBLIC_ATTRIBUTES * 3 + DUNDERS[::2] + FRAME_ATTRIBUTES[::2])


def load(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Load())


def store(name: str) -> ast.Name:
    return ast.Name(id=name, ctx=ast.Store())


def call(func: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(func=func, args=list(args), keywords=[])


names = st.sampled_from(SAFE_NAMES * 10 + RISKY_NAMES[::3])
local_names = st.sampled_from(LOCALS)

huge_ints = st.integers(MAX_INT_LITERAL_DIGITS - 5, MAX_INT_LITERAL_DIGITS + 25).map(
    lambda digits: int("9" * digits)
)
huge_strings = st.tuples(
    st.integers(MAX_STRING_LITERAL_CHARS - 500, MAX_STRING_LITERAL_CHARS + 500),
    st.sampled_from("ab{%"),
).map(lambda size_char: size_char[1] * size_char[0])
constants = st.one_of(
    st.integers(-1000, 1000),
    st.integers(),
    st.floats(allow_nan=False),
    TEXT,
    st.binary(max_size=8),
    st.sampled_from([None, True, False, ...]),
).map(lambda value: ast.Constant(value=value))
huge_constants = st.one_of(huge_ints, huge_strings).map(lambda value: ast.Constant(value=value))

# One leaf in about twelve is a huge literal (more would push most programs over the size cap).
leaves = st.one_of(*[constants] * 9, *[names.map(load)] * 10, huge_constants)


def attribute_chain(base: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """``base.a.b.c`` (and calls along the way): the shape of every class-hierarchy walk."""

    def build(parts: tuple[ast.expr, list[tuple[str, bool]]]) -> ast.expr:
        node, steps = parts
        for attr, called in steps:
            node = ast.Attribute(value=node, attr=attr, ctx=ast.Load())
            if called:
                node = call(node)
        return node

    return st.tuples(
        base, st.lists(st.tuples(ATTRIBUTES, st.booleans()), min_size=1, max_size=5)
    ).map(build)


def comprehension(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.comprehension]:
    return st.builds(
        ast.comprehension,
        target=local_names.map(store),
        iter=st.one_of(
            children, st.integers(0, 5).map(lambda n: call(load("range"), ast.Constant(n)))
        ),
        ifs=st.lists(children, max_size=1),
        is_async=st.just(0),
    )


def formatted(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """An f-string: text, values with ``!s``/``!r``/``!a``, format specs that nest values."""
    spec = st.one_of(
        st.none(),
        st.sampled_from(FORMAT_SPECS).map(
            lambda s: ast.JoinedStr([ast.Constant(s)]) if s else None
        ),
        children.map(lambda v: ast.JoinedStr([ast.FormattedValue(v, -1, None)])),
    )
    value = st.builds(
        ast.FormattedValue,
        value=children,
        conversion=st.sampled_from([-1, ord("s"), ord("r"), ord("a")]),
        format_spec=spec,
    )
    text = TEXT.filter(lambda s: "{" not in s and "}" not in s).map(ast.Constant)
    return st.lists(st.one_of(value, text), min_size=1, max_size=4).map(ast.JoinedStr)


def lambdas(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    arguments = st.lists(local_names, max_size=2).map(
        lambda args: ast.arguments(
            posonlyargs=[],
            args=[ast.arg(a) for a in args],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=[],
        )
    )
    return st.builds(ast.Lambda, args=arguments, body=children)


def extend(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    collections_ = st.lists(children, max_size=3)
    return st.one_of(
        attribute_chain(children),
        attribute_chain(leaves),
        st.builds(call, children, children),
        st.builds(lambda f, args: ast.Call(f, args, []), children, collections_),
        st.builds(
            lambda f, value: ast.Call(f, [ast.Starred(value, ast.Load())], []), children, children
        ),
        st.builds(lambda v, i: ast.Subscript(v, i, ast.Load()), children, children),
        st.builds(
            lambda v, lo, hi: ast.Subscript(v, ast.Slice(lo, hi, None), ast.Load()),
            children,
            children,
            children,
        ),
        st.builds(
            lambda a, op, b: ast.BinOp(a, op(), b), children, st.sampled_from(OPERATORS), children
        ),
        st.builds(
            lambda op, v: ast.UnaryOp(op(), v),
            st.sampled_from([ast.Not, ast.USub, ast.UAdd, ast.Invert]),
            children,
        ),
        st.builds(
            lambda a, op, b: ast.Compare(a, [op()], [b]),
            children,
            st.sampled_from(COMPARISONS),
            children,
        ),
        st.builds(
            lambda op, vs: ast.BoolOp(op(), vs),
            st.sampled_from([ast.And, ast.Or]),
            st.lists(children, min_size=2, max_size=3),
        ),
        st.builds(ast.IfExp, children, children, children),
        st.builds(lambda vs: ast.List(vs, ast.Load()), collections_),
        st.builds(lambda vs: ast.Tuple(vs, ast.Load()), collections_),
        st.builds(ast.Set, st.lists(children, min_size=1, max_size=3)),
        st.builds(
            lambda kv: ast.Dict([k for k, _ in kv], [v for _, v in kv]),
            st.lists(st.tuples(children, children), max_size=3),
        ),
        st.builds(
            ast.ListComp, children, st.lists(comprehension(children), min_size=1, max_size=2)
        ),
        st.builds(ast.SetComp, children, st.lists(comprehension(children), min_size=1, max_size=2)),
        st.builds(
            ast.GeneratorExp, children, st.lists(comprehension(children), min_size=1, max_size=2)
        ),
        st.builds(
            ast.DictComp,
            children,
            children,
            st.lists(comprehension(children), min_size=1, max_size=1),
        ),
        st.builds(lambda name, v: ast.NamedExpr(store(name), v), local_names, children),
        formatted(children),
        lambdas(children),
    )


expressions = st.recursive(leaves, extend, max_leaves=12)


def targets() -> st.SearchStrategy[ast.expr]:
    return st.one_of(
        local_names.map(store),
        local_names.map(store),
        st.builds(lambda v, attr: ast.Attribute(v, attr, ast.Store()), expressions, ATTRIBUTES),
        st.builds(lambda v, i: ast.Subscript(v, i, ast.Store()), expressions, expressions),
        st.lists(local_names.map(store), min_size=2, max_size=3).map(
            lambda ns: ast.Tuple(ns, ast.Store())
        ),
    )


ALLOWED_MEMBERS = sorted(
    (module, member) for module, members in ALLOWED_MODULE_MEMBERS.items() for member in members
)


def imports() -> st.SearchStrategy[ast.stmt]:
    """Mostly allowed imports; some of a module or a member that is not."""
    allowed = sorted(ALLOWED_MODULE_MEMBERS)
    module = st.sampled_from(allowed * 8 + DISALLOWED_MODULES)
    member = st.one_of(
        *[st.sampled_from(ALLOWED_MEMBERS)] * 8,
        st.tuples(module, st.sampled_from([*PUBLIC_ATTRIBUTES[::10], *DUNDERS[::4], "*"])),
    )
    alias = st.one_of(st.none(), local_names)
    return st.one_of(
        st.builds(lambda m, a: ast.Import([ast.alias(m, a)]), module, alias),
        st.builds(
            lambda mn, a: ast.ImportFrom(mn[0], [ast.alias(mn[1], a if mn[1] != "*" else None)], 0),
            member,
            alias,
        ),
    )


def simple_statements() -> st.SearchStrategy[ast.stmt]:
    return st.one_of(
        st.builds(lambda t, v: ast.Assign([t], v, None), targets(), expressions),
        st.builds(lambda t, v: ast.Assign([t], v, None), targets(), expressions),
        st.builds(
            lambda t, op, v: ast.AugAssign(t, op(), v),
            local_names.map(store),
            st.sampled_from(OPERATORS),
            expressions,
        ),
        st.builds(ast.Expr, expressions),
        st.builds(ast.Return, expressions),
        imports(),
        st.builds(lambda v: ast.Raise(call(load("ValueError"), v), None), expressions),
        st.builds(lambda v: ast.Assert(v, None), expressions),
        st.builds(lambda t: ast.Delete([t]), local_names.map(lambda n: ast.Name(n, ast.Del()))),
        st.sampled_from([ast.Pass(), ast.Break(), ast.Continue(), ast.Pass()]),
    )


def function_def(body: st.SearchStrategy[list[ast.stmt]]) -> st.SearchStrategy[ast.stmt]:
    """A nested function: sometimes decorated, sometimes with repeated or default arguments."""
    arguments = st.builds(
        lambda args, defaults: ast.arguments(
            posonlyargs=[],
            args=[ast.arg(a) for a in args],
            vararg=None,
            kwonlyargs=[],
            kw_defaults=[],
            kwarg=None,
            defaults=defaults[: len(args)],
        ),
        st.lists(local_names, max_size=3),
        st.lists(expressions, max_size=1),
    )
    decorators = st.one_of(*[st.just([])] * 20, st.lists(expressions, min_size=1, max_size=2))
    return st.builds(
        lambda name, args, stmts, decorated: ast.FunctionDef(
            name=name,
            args=args,
            body=stmts,
            decorator_list=decorated,
            returns=None,
            type_comment=None,
        ),
        st.one_of(st.sampled_from(["helper", "inner", "key"]), st.sampled_from(RISKY_NAMES)),
        arguments,
        body,
        decorators,
    )


def match_statement(body: st.SearchStrategy[list[ast.stmt]]) -> st.SearchStrategy[ast.stmt]:
    pattern = st.one_of(
        st.just(ast.MatchAs(None, None)),
        st.builds(ast.MatchValue, constants),
        st.builds(lambda n: ast.MatchAs(None, n), local_names.filter(lambda n: n != "_")),
        st.builds(
            lambda n: ast.MatchClass(load(n), [], [], []), st.sampled_from(["int", "str", "list"])
        ),
        st.just(ast.MatchSequence([ast.MatchStar("a")])),
    )
    case = st.builds(ast.match_case, pattern, st.one_of(st.none(), expressions), body)
    return st.builds(ast.Match, expressions, st.lists(case, min_size=1, max_size=2))


def _statements(children: st.SearchStrategy[list[ast.stmt]]) -> st.SearchStrategy[list[ast.stmt]]:
    compound = st.one_of(
        st.builds(ast.If, expressions, children, children),
        st.builds(
            lambda t, n, b: ast.For(t, call(load("range"), ast.Constant(n)), b, [], None),
            local_names.map(store),
            st.integers(0, 4),
            children,
        ),
        st.builds(
            lambda t, it, b: ast.For(t, it, b, [], None),
            local_names.map(store),
            expressions,
            children,
        ),
        st.builds(lambda test, b: ast.While(test, [*b, ast.Break()], []), expressions, children),
        st.builds(
            lambda b, handler, name, final: ast.Try(
                b, [ast.ExceptHandler(handler, name, [ast.Pass()])], [], final
            ),
            children,
            st.one_of(st.none(), st.just(load("Exception")), expressions),
            st.one_of(st.none(), local_names),
            st.lists(simple_statements(), max_size=1),
        ),
        st.builds(
            lambda v, name, b: ast.With([ast.withitem(v, name)], b),
            expressions,
            st.one_of(st.none(), local_names.map(store)),
            children,
        ),
        function_def(children),
        function_def(children),
    )
    statement = st.one_of(simple_statements(), simple_statements(), compound)
    return st.lists(statement, min_size=1, max_size=4)


bodies = st.recursive(
    st.lists(simple_statements(), min_size=1, max_size=3), _statements, max_leaves=6
)


def entry(body: list[ast.stmt], result: ast.expr, name: str = "execute_command") -> ast.FunctionDef:
    arguments = ast.arguments([], [ast.arg("image")], None, [], [], None, [])
    return ast.FunctionDef(name, arguments, [*body, ast.Return(result)], [], None, None)


class _PlainFStrings(ast.NodeTransformer):
    """Replaces f-strings by constants (Python 3.11 cannot unparse some of them)."""

    def visit_JoinedStr(self, node: ast.JoinedStr) -> ast.expr:
        return ast.Constant("f-string")


def unparse(module: ast.Module) -> str:
    """Source of ``module``; f-strings whose parts need a backslash become plain strings."""
    try:
        return ast.unparse(ast.fix_missing_locations(module))
    except ValueError:  # "Unable to avoid backslash in f-string expression part"
        return ast.unparse(ast.fix_missing_locations(_PlainFStrings().visit(module)))


# A program: optional module-level statements, then ``def execute_command(image)``.
programs = st.builds(
    lambda header, body, result: unparse(ast.Module([*header, entry(body, result)], [])),
    st.lists(st.one_of(imports(), simple_statements()), max_size=2),
    bodies,
    expressions,
)

# The body of an entry point alone, so many can share one worker (see batch_program).
function_bodies = st.builds(lambda body, result: [*body, ast.Return(result)], bodies, expressions)


def as_program(body: list[ast.stmt], name: str = "execute_command") -> str:
    arguments = ast.arguments([], [ast.arg("image")], None, [], [], None, [])
    return unparse(ast.Module([ast.FunctionDef(name, arguments, body, [], None, None)], []))


# Mutations: each turns a generated program into a more hostile one.
EXTRA_STATEMENTS = [
    "break",
    "continue",
    "return 1",
    "global a",
    "nonlocal a",
    "yield a",
    "await a",
    "import os",
    "from math import *",
    "a.real *= 2",
    "class Thing:\n    pass",
    "match a:\n    case [b, *c]:\n        pass\n    case _:\n        pass",
    "async def helper():\n    pass",
    "del a.real",
    "with a as (b, c):\n    pass",
    "def twice(a, a):\n    return a",
    "lambda: (yield)",
    "print(*[1] * 10 ** 9)",
]
TEXT_NOISE = [
    "\x00",
    "\\",
    "'",
    '"',
    "{",
    "}",
    "(",
    ")",
    ":",
    "\n",
    "\t",
    " ",
    "\u00e9",
    "#",
    "\ufeff",
    "_",
    "__",
    "\r",
]


def mutate(source: str, rng: random.Random) -> str:
    """One random hostile edit of ``source``: a risky name, attribute, decorator, statement
    (often one only the compiler refuses), or a character of noise."""
    kind = rng.randrange(6)
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a generated program may not parse: only noise applies
        kind = 5
    nodes = list(ast.walk(tree)) if kind < 5 else []
    if kind == 0:
        named = [node for node in nodes if isinstance(node, ast.Name)]
        if named:
            rng.choice(named).id = rng.choice(RISKY_NAMES + SAFE_NAMES)
            return unparse(tree)
    if kind == 1:
        attributes = [node for node in nodes if isinstance(node, ast.Attribute)]
        if attributes:
            rng.choice(attributes).attr = rng.choice(DUNDERS + FRAME_ATTRIBUTES + PUBLIC_ATTRIBUTES)
            return unparse(tree)
    if kind == 2:
        functions = [node for node in nodes if isinstance(node, ast.FunctionDef)]
        rng.choice(functions).decorator_list.append(
            load(rng.choice(["len", "print", "helper", "a"]))
        )
        return unparse(tree)
    if kind in (3, 4):
        blocks = [node for node in nodes if isinstance(getattr(node, "body", None), list)]
        block = rng.choice(blocks)
        extra = ast.parse(rng.choice(EXTRA_STATEMENTS)).body
        position = rng.randrange(len(block.body) + 1)
        block.body[position:position] = extra
        return unparse(tree)
    position = rng.randrange(len(source) + 1)
    cut = rng.randrange(3)
    return source[:position] + rng.choice(TEXT_NOISE) + source[position + cut :]
