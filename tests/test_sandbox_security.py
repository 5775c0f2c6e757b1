"""Hostile programs against the sandbox: one regression test per known escape.

The cases follow the published escapes of in-process Python sandboxes (smolagents'
LocalPythonExecutor: CVE-2025-5120 getattr leakage, CVE-2025-9959 class-hierarchy walk to
Popen, ctypes, ``__del__`` time bombs, huge ``a**b``...), plus resource exhaustion. Each case
asserts the exact error kind (and a fragment of the message), not just "not ok".

Two layers are tested: the AST check (``rejected``), and the worker process on its own. For
the second, `tests/fixtures/escape_drill.py` hands programs live ``os``/``socket``/
``ctypes``... objects, as if they had already slipped past the AST check; the audit hook,
rlimits, unprivileged uid and chroot must still contain them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vpagent.attempts import FailureReason
from vpagent.sandbox.executor import SandboxExecutor
from vpagent.sandbox.limits import MAX_ERROR_CHARS, SandboxLimits
from vpagent.sandbox.result import ExecutionResult

IMAGE = {"id": "img", "width": 100, "height": 50}
LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=8, memory_mb=256, max_tool_calls=50)
ESCAPED_API = "escape_drill:build_escaped_api"  # tests/fixtures/escape_drill.py
FIXTURES = Path(__file__).parent / "fixtures"
IS_ROOT = os.geteuid() == 0

REJECTED, RUNTIME, MEMORY, TIMEOUT, TOOL_ERROR, CRASHED = (
    FailureReason.REJECTED,
    FailureReason.RUNTIME,
    FailureReason.MEMORY,
    FailureReason.TIMEOUT,
    FailureReason.TOOL_ERROR,
    FailureReason.CRASHED,
)


def program(body: str, header: str = "") -> str:
    """``header`` (imports, helpers) then ``def execute_command(image):`` with ``body``."""
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return f"{header.strip()}\ndef execute_command(image):\n{lines}"


def handler(tool: str, args: dict[str, Any]) -> Any:
    if tool == "find":
        return [{"box": [0, 0, 10, 10], "score": 0.9, "label": str(args.get("name"))}]
    if tool == "simple_query":
        return "blue"
    return "ok"


@dataclass(frozen=True)
class Case:
    source: str
    kind: FailureReason
    fragment: str  # expected in the error message (case-insensitive)


def case(source: str, kind: FailureReason, fragment: str, name: str) -> Any:
    return pytest.param(Case(source, kind, fragment), id=name)


# Layer 1: the AST allow-list. Nothing runs; no worker is used.
STATIC_ESCAPES = [
    # CVE-2025-5120: getattr leakage, directly and through higher-order helpers.
    case(program("return getattr(image, '_call')"), REJECTED, "'getattr'", "getattr"),
    case(program("return list(map(getattr, [image], ['_call']))"), REJECTED, "'getattr'",
         "getattr-via-map"),
    case(program("f = functools.partial(getattr, image)\nreturn f('_call')",
                 "import functools"), REJECTED, "'getattr'", "getattr-via-partial"),
    case(program("return hasattr(image, '_call')"), REJECTED, "'hasattr'", "hasattr"),
    case(program("setattr(image, 'left', 1)\nreturn 1"), REJECTED, "'setattr'", "setattr"),
    # CVE-2025-9959: the class hierarchy walk to subprocess.Popen.
    case(program("""
for c in ().__class__.__base__.__subclasses__():
    if c.__name__ == 'Popen':
        return c(['id']).wait()
"""), REJECTED, "'.__subclasses__'", "subclasses-walk-to-popen"),
    case(program("return object.__subclasses__()"), REJECTED, "'.__subclasses__'",
         "object-subclasses"),
    case(program("return str(type(image))"), REJECTED, "'type'", "type-builtin"),
    case(program("return str(int.mro())"), REJECTED, "'.mro'", "mro"),
    case(program("return str(image.__dict__)"), REJECTED, "'.__dict__'", "instance-dict"),
    case(program("return str(vars(image))"), REJECTED, "'vars'", "vars"),
    case(program("return str(dir(image))"), REJECTED, "'dir'", "dir"),
    case(program("return str(globals())"), REJECTED, "'globals'", "globals"),
    case(program("return str(locals())"), REJECTED, "'locals'", "locals"),
    # Function and method internals: globals, closures, bound selves (getattr-free leaks).
    case(program("return str(llm_query.__globals__)"), REJECTED, "'.__globals__'",
         "function-globals"),
    case(program("return str(llm_query.__closure__)"), REJECTED, "'.__closure__'",
         "function-closure"),
    case(program("return str(image.find.__self__)"), REJECTED, "'.__self__'", "method-self"),
    case(program("return str(image.__class__.__init__.__globals__['inspect'])"), REJECTED,
         "'.__globals__'", "patch-init-globals"),
    case(program("return str(sorted(['_call'], key=image.__getattribute__))"), REJECTED,
         "'.__getattribute__'", "sorted-key-getattribute"),
    case(program("return str(print.__self__)"), REJECTED, "'.__self__'", "print-self"),
    case(program("return str(llm_query.__code__.co_consts)"), REJECTED, "'.co_consts'",
         "code-object"),
    # The ImagePatch's private attributes: the host channel and image id.
    case(program("return image._call('ocr', {})"), REJECTED, "'._call'", "patch-private-call"),
    case(program("return image._image_id"), REJECTED, "'._image_id'", "patch-private-id"),
    case(program("return image._request('ocr')"), REJECTED, "'._request'",
         "patch-private-request"),
    # sys.modules / __builtins__ / __import__ reach-ins.
    case(program("return str(__builtins__['open'])"), REJECTED, "'__builtins__'", "builtins-dict"),
    case(program("return str(__import__('os'))"), REJECTED, "'__import__'", "dunder-import"),
    case(program("return 1", "import sys"), REJECTED, "import of 'sys'", "import-sys"),
    case(program("return 1", "import builtins"), REJECTED, "import of 'builtins'",
         "import-builtins"),
    case(program("return 1", "import importlib"), REJECTED, "import of 'importlib'",
         "import-importlib"),
    case(program("return 1", "import os.path"), REJECTED, "import of 'os.path'", "import-dotted"),
    case(program("return 1", "import collections.abc"), REJECTED, "'collections.abc'",
         "import-submodule-of-allowed"),
    case(program("return 1", "from . import worker"), REJECTED, "relative imports",
         "relative-import"),
    case(program("return 1", "from math import *"), REJECTED, "import *", "star-import"),
    # From-imports of allowed modules' internals and re-exports.
    case(program("return 1", "from re import enum"), REJECTED, "'re.enum'", "re-enum"),
    case(program("return 1", "from re import functools"), REJECTED, "'re.functools'",
         "re-functools"),
    case(program("return 1", "from functools import update_wrapper"), REJECTED,
         "'functools.update_wrapper'", "from-functools-update-wrapper"),
    case(program("return 1", "from functools import wraps"), REJECTED, "'functools.wraps'",
         "from-functools-wraps"),
    case(program("return 1", "from collections import abc"), REJECTED, "'collections.abc'",
         "collections-abc"),
    case(program("return 1", "from collections import namedtuple"), REJECTED,
         "'collections.namedtuple'", "collections-namedtuple"),
    case(program("return 1", "from statistics import mul"), REJECTED, "'statistics.mul'",
         "statistics-operator-reexport"),
    case(program("return 1", "from string import Formatter"), REJECTED, "'string.Formatter'",
         "string-formatter"),
    case(program("return 1", "from string import Template"), REJECTED, "'string.Template'",
         "string-template"),
    # str.format / format_map / format() attribute access, and f-string tricks.
    case(program("return '{0.__class__}'.format(image)"), REJECTED, "'.format'", "str-format"),
    case(program("return '{x._call}'.format_map({'x': image})"), REJECTED, "'.format_map'",
         "str-format-map"),
    case(program("f = str.format\nreturn f('{0._call}', image)"), REJECTED, "'.format'",
         "unbound-str-format"),
    case(program("return format(image, '')"), REJECTED, "'format'", "format-builtin"),
    case(program("return f'{image._call}'"), REJECTED, "'._call'", "fstring-private"),
    case(program("return f'{image.__class__.__mro__}'"), REJECTED, "'.__mro__'",
         "fstring-dunder"),
    # Generator and frame tricks.
    case(program("g = (x for x in [1])\nreturn str(g.gi_frame.f_back.f_globals)"), REJECTED,
         "'.f_globals'", "generator-frame"),
    case(program("g = (x for x in [1])\nreturn str(g.gi_code)"), REJECTED, "'.gi_code'",
         "generator-code"),
    case(program("def gen():\n    yield 1\nreturn list(gen())"), REJECTED, "'Yield'", "yield"),
    case(program("def gen():\n    yield from [1]\nreturn list(gen())"), REJECTED,
         "'YieldFrom'", "yield-from"),
    case(program("f = lambda: (yield)\nreturn 1"), REJECTED, "'Yield'", "yield-in-lambda"),
    # Exceptions' tracebacks lead to frames.
    case(program("""
try:
    1 / 0
except ZeroDivisionError as error:
    return str(error.__traceback__.tb_frame.f_globals)
"""), REJECTED, "'.f_globals'", "exception-traceback"),
    case(program("""
try:
    1 / 0
except ZeroDivisionError as error:
    return str(error.with_traceback(None))
"""), REJECTED, "'.with_traceback'", "exception-with-traceback"),
    # Dangerous builtins.
    case(program("return eval('1 + 1')"), REJECTED, "'eval'", "eval"),
    case(program("exec('x = 1')\nreturn 1"), REJECTED, "'exec'", "exec"),
    case(program("return str(compile('1', 'f', 'eval'))"), REJECTED, "'compile'", "compile"),
    case(program("return open('/etc/passwd').read()"), REJECTED, "'open'", "open-builtin"),
    case(program("breakpoint()\nreturn 1"), REJECTED, "'breakpoint'", "breakpoint"),
    case(program("return input()"), REJECTED, "'input'", "input"),
    case(program("exit(0)"), REJECTED, "'exit'", "exit"),
    case(program("return str(memoryview(b'x'))"), REJECTED, "'memoryview'", "memoryview"),
    case(program("return str(super())"), REJECTED, "'super'", "super"),
    # Class definitions: __del__ / __getattribute__ time bombs need a class.
    case(program("return 1", """
class Bomb:
    def __del__(self):
        while True:
            pass
"""), REJECTED, "'ClassDef'", "del-time-bomb"),
    case(program("return 1", """
class Spy:
    def __getattribute__(self, name):
        return name
"""), REJECTED, "'ClassDef'", "getattribute-time-bomb"),
    # Statements outside the allow-list.
    case(program("return f()", "import functools\n@functools.cache\ndef f():\n    return 1"),
         REJECTED, "decorators", "decorator"),
    case(program("global counter\ncounter = 1\nreturn counter"), REJECTED, "'Global'",
         "global"),
    case(program("x = 1\ndef inner():\n    nonlocal x\n    x = 2\ninner()\nreturn x"),
         REJECTED, "'Nonlocal'", "nonlocal"),
    case(program("return 1", "async def helper():\n    return 1"), REJECTED,
         "'AsyncFunctionDef'", "async-def"),
    case(program("await image.find('dog')\nreturn 1"), REJECTED, "'Await'", "await"),
    case(program("while True:\n    os.fork()", "import os"), REJECTED, "import of 'os'",
         "fork-bomb"),
    case(program("match image.width:\n    case 100:\n        return 'a'\nreturn 'b'"),
         REJECTED, "'Match'", "match"),
    case(program("try:\n    pass\nexcept* ValueError:\n    pass\nreturn 1"), REJECTED,
         "'TryStar'", "except-star"),
    # The guards inserted by harden() cannot be shadowed.
    case(program("return 2", "_vp_mul = lambda a, b: 0"), REJECTED, "'_vp_mul'",
         "shadow-guard"),
    case(program("x = [0]\nx[0] *= 10\nreturn 1"), REJECTED, "augmented", "augassign-subscript"),
    # Static size limits.
    case(program("return " + "9" * 150), REJECTED, "integer literal", "huge-int-literal"),
    case(program("return '" + "a" * 11_000 + "'"), REJECTED, "string literal",
         "huge-string-literal"),
    case(program("x = 1\n" * 7_000 + "return x"), REJECTED, "longer than", "huge-source"),
    case(program("return " + "-" * 3_000 + "1"), REJECTED, "cannot be parsed",
         "deep-unary-nesting"),
    case(program("return 1") + "\x00", REJECTED, "NUL", "nul-byte"),
    case("def execute(image):\n    return 1\n", REJECTED, "execute_command", "no-entry-point"),
]  # fmt: skip

# Layer 2: programs that pass the AST check and must be stopped while running.
RUNTIME_ESCAPES = [
    # A real gadget found while writing this suite: functools.update_wrapper copies any
    # attribute by *name*, e.g. a worker function's __globals__ into the program's globals.
    case(program("""
functools.update_wrapper(holder, pow, assigned=(), updated=('__globals__',))
return str(os)
""", "import functools\ndef holder():\n    pass"), RUNTIME, "'functools.update_wrapper' is not",
         "update-wrapper-globals-gadget"),
    case(program("return statistics.mul(['a'], 10 ** 10)", "import statistics"), RUNTIME,
         "'statistics.mul' is not", "statistics-mul-skips-guard"),
    case(program("return string.Formatter().vformat('{0._call}', [image], {})",
                 "import string"), RUNTIME, "'string.Formatter' is not",
         "string-formatter-vformat"),
    case(program("return str(collections.namedtuple('P', 'x'))", "import collections"),
         RUNTIME, "'collections.namedtuple' is not", "namedtuple-needs-compile"),
    case(program("return str(re.enum)", "import re"), RUNTIME, "'re.enum' is not",
         "module-attribute-of-allowed"),
    case(program("return str(sys.modules['os'])"), RUNTIME, "NameError", "sys-modules-unbound"),
    # Huge arithmetic, guarded by harden().
    case(program("return 10 ** 10 ** 10"), RUNTIME, "integer power too large", "pow-tower"),
    case(program("return pow(10, 10 ** 10)"), RUNTIME, "integer power too large",
         "pow-builtin"),
    case(program("return 1 << 10 ** 10"), RUNTIME, "shift result too large", "lshift"),
    case(program("x = 10 ** 4000\nfor _ in range(10):\n    x = x * x\nreturn 1"), RUNTIME,
         "integer product too large", "repeated-squaring"),
    case(program("x = 3\nx **= 10 ** 8\nreturn 1"), RUNTIME, "integer power too large",
         "augmented-pow"),
    # Deep recursion.
    case(program("return f(0)", "def f(n):\n    return f(n + 1)"), RUNTIME, "RecursionError",
         "deep-recursion"),
    case(program("f = lambda n: f(n + 1)\nreturn f(0)"), RUNTIME, "RecursionError",
         "lambda-recursion"),
    # Hostile exceptions: huge or deeply nested payloads must not crash the report.
    case(program("raise ValueError([0] * 5_000_000)"), RUNTIME, "ValueError: [0, 0",
         "huge-exception-message"),
    case(program("x = []\nfor _ in range(100_000):\n    x = [x]\nraise ValueError(x)"),
         RUNTIME, "ValueError: [[[", "deeply-nested-exception"),
    # Tool arguments: only plain data, and small.
    case(program("return len(image.find('x' * 5_000_000))"), RUNTIME, "larger than",
         "huge-tool-arguments"),
    case(program("return len(image.find(image))"), RUNTIME, "plain data",
         "live-object-as-tool-argument"),
    case(program("return len(image.find(print))"), RUNTIME, "plain data",
         "function-as-tool-argument"),
    # Answers that are not answers.
    case(program("return [1, 2]"), RUNTIME, "returned list", "returns-list"),
    case(program("return None"), RUNTIME, "returned NoneType", "returns-none"),
    case(program("return image"), RUNTIME, "returned ImagePatch", "returns-patch"),
    case(program("return collections.UserString('x')", "import collections"), RUNTIME,
         "returned UserString", "returns-str-lookalike"),
    case(program("return 'x' * 20_000"), RUNTIME, "longer than", "returns-huge-string"),
    case(program("return 10 ** 5000"), RUNTIME, "ValueError", "returns-unprintable-int"),
    # Too many tool calls (the suite's limit is 50).
    case(program("while True:\n    image.find('dog')"), TOOL_ERROR, "too many tool calls",
         "tool-call-flood"),
]  # fmt: skip

MEMORY_BOMBS = [
    case(program("return len('a' * 10 ** 10)"), MEMORY, "repetition too large", "str-repeat"),
    case(program("return len([0] * 10 ** 10)"), MEMORY, "repetition too large", "list-repeat"),
    case(program("return len('x'.encode() * 10 ** 10)"), MEMORY, "repetition too large",
         "bytes-repeat"),
    case(program("return len(list(range(10 ** 10)))"), MEMORY, "out of memory", "huge-range"),
    case(program("s = 'ab' * 5_000\nreturn len(''.join([s] * 10 ** 6))"), MEMORY,
         "out of memory", "huge-join"),
    case(program("return len('a'.ljust(10 ** 10))"), MEMORY, "out of memory", "str-ljust"),
    case(program("return f'{1:>{10 ** 10}}'"), MEMORY, "out of memory", "fstring-width"),
    case(program("return len((7).to_bytes(10 ** 10, 'big'))"), MEMORY, "out of memory",
         "int-to-bytes"),
    case(program("x = [[0] * 10 ** 6 for _ in range(10 ** 4)]\nreturn len(x)"), MEMORY,
         "out of memory", "gradual-growth"),
]  # fmt: skip

CPU_BOMBS = [
    case(program("while True:\n    pass"), TIMEOUT, "CPU", "infinite-loop"),
    case(program("spin = lambda: all(v == 0 for v in iter(int, 1))\nreturn spin()"), TIMEOUT,
         "CPU", "while-true-in-lambda"),
    case(program("return str(sorted(range(9), key=lambda v: sum(range(10 ** 12))))"), TIMEOUT,
         "CPU", "sorted-key"),
    case(program("return str(re.match('(a+)+$', 'a' * 64 + 'b'))", "import re"), TIMEOUT,
         "CPU", "regex-backtracking"),
    case(program("""
while True:
    try:
        x = [0] * 10 ** 10
    except MemoryError:
        pass
"""), TIMEOUT, "CPU", "swallow-errors-forever"),
]  # fmt: skip


def assert_failed(result: ExecutionResult, expected: Case) -> None:
    assert not result.ok, result
    assert result.answer is None
    assert result.error_kind == expected.kind, result
    assert expected.fragment.lower() in (result.error or "").lower(), result


# Fixtures.


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(LIMITS, pool_size=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def escaped_executor() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(LIMITS, pool_size=1, api=ESCAPED_API, api_dir=FIXTURES) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def sentinel() -> Iterator[subprocess.Popen[bytes]]:
    """A process owned by the test user that hostile programs try to kill."""
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


# Layer 1.


@pytest.mark.parametrize("expected", STATIC_ESCAPES)
def test_static_escapes_are_rejected(
    executor: SandboxExecutor, expected: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_worker() -> None:
        raise AssertionError("a rejected program must never reach a worker")

    monkeypatch.setattr(executor, "_take_worker", no_worker)
    result = executor.run(expected.source, IMAGE, handler)
    assert_failed(result, expected)
    assert result.steps == []


@pytest.mark.parametrize(
    "module",
    ["os", "sys", "subprocess", "socket", "ctypes", "signal", "shutil", "pathlib", "io",
     "multiprocessing", "threading", "pickle", "marshal", "gc", "inspect", "posix", "mmap",
     "resource", "_posixsubprocess", "asyncio", "urllib", "http"],
)  # fmt: skip
def test_dangerous_modules_cannot_be_imported(executor: SandboxExecutor, module: str) -> None:
    for header in (f"import {module}", f"import {module} as m", f"from {module} import x"):
        result = executor.run(program("return 1", header), IMAGE, handler)
        assert result.error_kind == REJECTED, (header, result)
        assert "not allowed" in (result.error or "")


# Layer 2, with the real API.


@pytest.mark.parametrize("expected", RUNTIME_ESCAPES)
def test_runtime_escapes_fail_with_the_right_kind(
    executor: SandboxExecutor, expected: Case
) -> None:
    result = executor.run(expected.source, IMAGE, handler)
    assert_failed(result, expected)
    assert len(result.error or "") <= MAX_ERROR_CHARS


@pytest.mark.parametrize("expected", MEMORY_BOMBS)
def test_memory_bombs_are_contained(executor: SandboxExecutor, expected: Case) -> None:
    assert_failed(executor.run(expected.source, IMAGE, handler), expected)


@pytest.mark.parametrize("expected", CPU_BOMBS)
def test_cpu_bombs_are_killed(executor: SandboxExecutor, expected: Case) -> None:
    # The expected message names the CPU limit: killed by it, not by the wall clock.
    assert_failed(executor.run(expected.source, IMAGE, handler), expected)


def test_wall_clock_limit_kills_a_program_waiting_on_a_slow_tool() -> None:
    def slow(tool: str, args: dict[str, Any]) -> Any:
        time.sleep(0.3)
        return []

    limits = SandboxLimits(cpu_seconds=1, wall_seconds=1)
    with SandboxExecutor(limits, pool_size=0) as sandbox:
        result = sandbox.run(program("while True:\n    image.find('x')"), IMAGE, slow)
    assert result.error_kind == TIMEOUT
    assert "longer than 1 s" in (result.error or "")
    # Killed at the deadline: at most 4 calls of 0.3 s start within 1 s (the worker's own
    # start-up is not the program's time, so the clock around run() would measure the load).
    assert len(result.steps) <= 4


def test_printing_100_mb_keeps_only_the_output_limit(executor: SandboxExecutor) -> None:
    source = program("s = 'x' * 1_000_000\nfor _ in range(100):\n    print(s)\nreturn 'done'")
    result = executor.run(source, IMAGE, handler)
    assert result.ok, result
    assert result.answer == "done"
    assert len(result.stdout) <= LIMITS.max_output_chars + 100
    assert result.stdout.endswith("[output truncated]")


def test_printing_100_mb_at_once_is_a_memory_error(executor: SandboxExecutor) -> None:
    result = executor.run(program("print('x' * 10 ** 8)\nreturn 1"), IMAGE, handler)
    assert result.error_kind == MEMORY


def test_a_program_that_never_calls_a_tool_still_answers(executor: SandboxExecutor) -> None:
    result = executor.run(program("return sum(range(10))"), IMAGE, handler)
    assert result.ok and result.answer == "45" and result.steps == []


# Layer 2 alone: the program already holds live modules (a simulated AST-check escape).


def escaped_cases(tmp: Path, sentinel_pid: int) -> list[tuple[str, FailureReason, str]]:
    target = tmp / "pwned"
    return [
        ("return open_file('/etc/passwd').read()", RUNTIME, "'open'"),
        (f"open_file('{target}', 'w').write('x')\nreturn 1", RUNTIME, "'open'"),
        (f"os_module.system('touch {target}')\nreturn 1", RUNTIME, "'os.system'"),
        (f"subprocess_module.run(['touch', '{target}'])\nreturn 1", RUNTIME, "not allowed"),
        (f"os_module.mkdir('{target}')\nreturn 1", RUNTIME, "'os.mkdir'"),
        ("return str(os_module.listdir('/'))", RUNTIME, "'os.listdir'"),
        ("return os_module.fork()", RUNTIME, "'os.fork'"),
        ("os_module.kill(os_module.getppid(), 9)\nreturn 1", RUNTIME, "'os.kill'"),
        (f"os_module.kill({sentinel_pid}, 9)\nreturn 1", RUNTIME, "'os.kill'"),
        ("os_module.killpg(0, 9)\nreturn 1", RUNTIME, "'os.killpg'"),
        ("signal_module.raise_signal(9)\nreturn 1", CRASHED, "killed by signal 9"),
        ("return str(socket_module.socket())", RUNTIME, "'socket.__new__'"),
        ("return str(socket_module.create_connection(('127.0.0.1', 9), 1))", RUNTIME,
         "not allowed"),
        ("return str(socket_module.getaddrinfo('example.com', 80))", RUNTIME, "not allowed"),
        ("return str(ctypes_module.CDLL(None))", RUNTIME, "'ctypes.dlopen'"),
        ("return str(ctypes_module.string_at(0))", RUNTIME, "'ctypes.string_at'"),
        ("return str(ctypes_module.c_int.from_address(8))", RUNTIME, "'ctypes.cdata'"),
        ("return builtins_module.eval('1 + 1')", RUNTIME, "'compile'"),
        ("return str(sys_module.modules['importlib'].import_module('json'))", RUNTIME,
         "No module named 'json'"),
        ("sys_module.addaudithook(print)\nreturn open_file('/etc/passwd').read()", RUNTIME,
         "'open'"),
        ("return str(sys_module._getframe())", REJECTED, "'._getframe'"),
        ("return str(sys_module.settrace(None))", RUNTIME, "'sys.settrace'"),
        ("os_module.setuid(0)\nreturn 1", RUNTIME, "PermissionError"),
    ]  # fmt: skip


def test_escaped_program_is_contained_by_the_process_layer(
    escaped_executor: SandboxExecutor, tmp_path: Path, sentinel: subprocess.Popen[bytes]
) -> None:
    failures = []
    for body, kind, fragment in escaped_cases(tmp_path, sentinel.pid):
        result = escaped_executor.run(program(body), IMAGE, handler)
        if result.error_kind != kind or fragment.lower() not in (result.error or "").lower():
            failures.append((body, result.error_kind, result.error))
    assert not failures, failures
    assert not (tmp_path / "pwned").exists()
    assert sentinel.poll() is None  # the sentinel survived
    os.kill(os.getpid(), 0)  # and so did we


def test_escaped_program_runs_unprivileged_in_an_empty_root(
    escaped_executor: SandboxExecutor,
) -> None:
    source = program(
        "return str([os_module.getuid(), os_module.getgid(), "
        "os_module.path.exists('/etc/passwd'), os_module.getcwd()])"
    )
    result = escaped_executor.run(source, IMAGE, handler)
    assert result.ok, result
    uid, gid, has_passwd, cwd = result.answer.strip("[]").split(", ")
    assert int(uid) != 0 and int(gid) != 0
    if IS_ROOT:  # chroot needs root
        assert has_passwd == "False" and cwd == "'/'"


def test_escaped_program_that_ignores_sigxcpu_is_still_killed(
    escaped_executor: SandboxExecutor,
) -> None:
    body = (
        "signal_module.signal(signal_module.SIGXCPU, signal_module.SIG_IGN)\nwhile True:\n    pass"
    )
    result = escaped_executor.run(program(body), IMAGE, handler)
    assert result.error_kind == TIMEOUT, result


def test_escaped_program_writing_garbage_to_the_host_pipe(
    escaped_executor: SandboxExecutor,
) -> None:
    body = "os_module.write(1, b'\\xff' * 64)\nwhile True:\n    pass"
    result = escaped_executor.run(program(body), IMAGE, handler)
    assert result.error_kind == CRASHED, result
    assert "protocol" in (result.error or "")


def test_escaped_program_forging_tool_calls_beyond_the_limit(
    escaped_executor: SandboxExecutor,
) -> None:
    # Bypasses the worker's own counter; the host enforces the limit too.
    body = """
import_msgpack = sys_module.modules['msgpack']
frame = import_msgpack.packb({'op': 'call', 'tool': 'find', 'args': {'name': 'x'}})
header = len(frame).to_bytes(4, 'big')
for _ in range(200):
    os_module.write(1, header + frame)
    os_module.read(0, 1000)
return 1
"""
    result = escaped_executor.run(program(body), IMAGE, handler)
    assert result.error_kind == CRASHED, result
    assert "tool-call limit" in (result.error or "")
    assert len(result.steps) == LIMITS.max_tool_calls


def test_escaped_program_closing_its_pipe(escaped_executor: SandboxExecutor) -> None:
    source = program("os_module.close(1)\nwhile True:\n    pass")
    result = escaped_executor.run(source, IMAGE, handler)
    assert result.error_kind == CRASHED, result
    assert "protocol" in (result.error or "")


# After all of the above.


def test_host_stays_responsive(
    executor: SandboxExecutor, sentinel: subprocess.Popen[bytes]
) -> None:
    source = program("dogs = image.find('dog')\nreturn f'{len(dogs)} {dogs[0].label}'")
    result = executor.run(source, IMAGE, handler)
    assert result.ok and result.answer == "1 dog", result
    assert sentinel.poll() is None
