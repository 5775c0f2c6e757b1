"""The sandbox worker: a fresh interpreter that runs exactly one program, then exits.

Started by :mod:`vpagent.sandbox.executor` as ``python -I -m vpagent.sandbox.worker``.
Start-up order matters: import everything the program may need, then drop privileges
(network namespace, empty chroot, a uid of its own, no_new_privs), set rlimits, and report
ready (or why it could not start). On receiving the program: check it again, compile it,
empty the import system and install an audit hook, then run it. The program runs with a
curated builtins table and allow-listed module views, and reaches the host only through
:class:`HostChannel`. Whatever happens, the worker tries to send one final report.
"""

from __future__ import annotations

import argparse
import builtins
import collections
import ctypes
import functools
import importlib
import itertools
import math
import os
import re
import reprlib
import resource
import statistics
import string
import sys
import traceback
import types
from collections.abc import Callable
from typing import Any

from vpagent.sandbox import protocol
from vpagent.sandbox.limits import (
    FRAME_SLACK_BYTES,
    MAX_ANSWER_CHARS,
    MAX_ERROR_CHARS,
    MAX_INT_BITS,
    MAX_SEQUENCE_ITEMS,
    MAX_TOOL_ARGS_BYTES,
    RECURSION_LIMIT,
    SANDBOX_UID_BASE,
)
from vpagent.sandbox.policy import (
    ALLOWED_MODULE_MEMBERS,
    ENTRY_POINT,
    ProgramRejected,
    check_program,
    harden,
)

READ_FD, WRITE_FD = 0, 1
CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
PR_SET_NO_NEW_PRIVS = 38

# Audit events that no program needs; raising in the hook aborts the operation.
BLOCKED_AUDIT_PREFIXES = (
    "open", "os.", "socket.", "subprocess.", "shutil.", "ctypes.", "import", "sys._getframe",
    "sys.settrace", "sys.setprofile", "code.__new__", "function.__new__", "marshal.",
    "pickle.", "builtins.input", "cpython.run_", "signal.", "mmap.", "fcntl.", "resource.",
    "sys.addaudithook", "object.__setattr__", "object.__delattr__", "compile", "exec",
)  # fmt: skip

# Modules that allowed functions import lazily (Counter.most_common imports heapq, re's
# parser imports unicodedata for \N{...}). Imported at start-up, before imports are blocked.
PRELOADED_MODULES = ("heapq", "copy", "warnings", "unicodedata")

# Shortens the arguments of an exception the program raised (they may be huge or nested).
_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel, _SHORT_REPR.maxlist, _SHORT_REPR.maxdict = 3, 20, 20
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = MAX_ERROR_CHARS // 4


class ToolCallError(Exception):
    """A tool call the program made failed on the host."""


class OutputBuffer:
    """print() replacement that keeps at most ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def print(
        self,
        *values: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: object = None,
        flush: bool = False,
    ) -> None:
        """Like print(); ``file`` and ``flush`` are accepted and ignored (all goes to stdout)."""
        del file, flush
        if self.size >= self.limit:
            self.truncated = True
            return
        text = (" " if sep is None else str(sep)).join(str(value) for value in values)
        text += "\n" if end is None else str(end)
        room = self.limit - self.size
        if len(text) > room:
            text, self.truncated = text[:room], True
        self.parts.append(text)
        self.size += len(text)

    def text(self) -> str:
        return "".join(self.parts) + ("\n[output truncated]" if self.truncated else "")


class HostChannel:
    """Sends tool calls to the host as plain data and waits for the reply."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self.calls = 0

    def call(self, tool: str, args: dict[str, Any]) -> Any:
        self.calls += 1
        if self.calls > self.max_calls:
            raise ToolCallError(f"too many tool calls (limit {self.max_calls})")
        try:
            frame = protocol.encode({"op": "call", "tool": tool, "args": args})
        except (TypeError, ValueError, protocol.ProtocolError) as error:
            raise TypeError(f"{tool}() arguments must be plain data: {error}") from None
        if len(frame) > MAX_TOOL_ARGS_BYTES + FRAME_SLACK_BYTES:
            raise ValueError(f"{tool}() arguments are larger than {MAX_TOOL_ARGS_BYTES} bytes")
        protocol.write_all(WRITE_FD, frame)
        reply = protocol.read_frame(READ_FD)
        if not reply.get("ok"):
            raise ToolCallError(str(reply.get("error", "tool failed")))
        return reply.get("value")


# Guards inserted by policy.harden() in place of **, * and <<.


def _too_many_bits(bits: float) -> bool:
    return bits > MAX_INT_BITS


def guarded_pow(base: Any, exponent: Any, modulus: Any = None) -> Any:
    if modulus is not None:
        return pow(base, exponent, modulus)
    ints = isinstance(base, int) and isinstance(exponent, int)
    if ints and exponent > 0 and abs(base) > 1 and _too_many_bits(exponent * math.log2(abs(base))):
        raise OverflowError(f"integer power too large (limit {MAX_INT_BITS} bits)")
    return base**exponent


def guarded_mul(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int):
        if _too_many_bits(left.bit_length() + right.bit_length()):
            raise OverflowError(f"integer product too large (limit {MAX_INT_BITS} bits)")
    elif isinstance(left, str | bytes | list | tuple) and isinstance(right, int):
        if len(left) * right > MAX_SEQUENCE_ITEMS:
            raise MemoryError(f"sequence repetition too large (limit {MAX_SEQUENCE_ITEMS})")
    elif isinstance(right, str | bytes | list | tuple) and isinstance(left, int):
        return guarded_mul(right, left)
    return left * right


def guarded_lshift(value: Any, shift: Any) -> Any:
    ints = isinstance(value, int) and isinstance(shift, int)
    if ints and value and _too_many_bits(value.bit_length() + shift):
        raise OverflowError(f"shift result too large (limit {MAX_INT_BITS} bits)")
    return value << shift


# The program's world: curated builtins and curated module namespaces.

SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "bool", "chr", "dict", "divmod", "enumerate", "filter", "float",
    "frozenset", "hash", "int", "isinstance", "iter", "len", "list", "map", "max", "min",
    "next", "ord", "range", "repr", "reversed", "round", "set", "slice", "sorted", "str",
    "sum", "tuple", "zip", "bin", "hex", "oct", "ascii", "issubclass",
    "Exception", "ValueError", "TypeError", "KeyError", "IndexError", "ZeroDivisionError",
    "ArithmeticError", "AssertionError", "LookupError", "RuntimeError", "StopIteration",
    "NotImplementedError", "AttributeError", "OverflowError", "MemoryError", "RecursionError",
)  # fmt: skip


def _allowed_namespace(module: types.ModuleType) -> dict[str, Any]:
    """The allow-listed members of ``module`` that this Python version has."""
    allowed = ALLOWED_MODULE_MEMBERS[module.__name__]
    return {name: value for name, value in vars(module).items() if name in allowed}


def build_module_table() -> dict[str, dict[str, Any]]:
    """Namespaces for the allowed imports: allow-listed members only, never a module object."""
    modules = (math, statistics, itertools, collections, re, string, functools)
    return {module.__name__: _allowed_namespace(module) for module in modules}


class ModuleView(types.SimpleNamespace):
    """What ``import math`` binds inside a program: allow-listed attributes, no module object."""

    def __init__(self, module_name: str, members: dict[str, Any]) -> None:
        super().__init__(**members)
        self._vp_module = module_name

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"'{self._vp_module}.{name}' is not available in programs")


def build_builtins(output: OutputBuffer, modules: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES}

    def restricted_import(
        name: str, globals_: Any = None, locals_: Any = None, fromlist: Any = (), level: int = 0
    ) -> Any:
        if level or name not in modules:
            raise ImportError(f"import of '{name}' is not allowed")
        return ModuleView(name, modules[name])

    table.update(
        print=output.print,
        pow=guarded_pow,
        __import__=restricted_import,
        __build_class__=None,
        _vp_pow=guarded_pow,
        _vp_mul=guarded_mul,
        _vp_lshift=guarded_lshift,
    )
    return table


# Isolation of the worker process itself.


def _libc() -> Any:
    return ctypes.CDLL(None, use_errno=True)


def drop_privileges(jail: str | None) -> list[str]:
    """Apply every isolation layer this machine allows; return the names of those applied."""
    applied: list[str] = []
    libc = _libc()
    if os.geteuid() == 0:
        if libc.unshare(CLONE_NEWNET) == 0:
            applied.append("network-namespace")
        if jail:
            os.chroot(jail)
            os.chdir("/")
            applied.append("chroot")
        # A uid of its own: a worker cannot signal or trace a sibling worker (or the host).
        sandbox_id = SANDBOX_UID_BASE + os.getpid()
        os.setgroups([])
        os.setgid(sandbox_id)
        os.setuid(sandbox_id)
        applied.append("unprivileged-uid")
    elif libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0:
        applied.append("network-namespace")
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0:
        applied.append("no-new-privs")
    return applied


def apply_rlimits(cpu_seconds: int, memory_mb: int) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu_used = int(used.ru_utime + used.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_used + cpu_seconds, cpu_used + cpu_seconds + 1))
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))


def seal_imports() -> None:
    """Empty the import system's finders: a module not loaded by now can never be loaded.

    The audit hook blocks ``import`` statements; this also covers ``importlib`` calls that
    do not raise that event (e.g. loading a C extension found on ``sys.path``).
    """
    sys.meta_path.clear()
    sys.path_hooks.clear()
    sys.path_importer_cache.clear()
    sys.path.clear()


def install_audit_hook(program_code: types.CodeType) -> None:
    """Block dangerous interpreter events for the rest of the process's life.

    The one ``exec`` allowed is that of the program's own module code.
    """

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event == "exec" and args and args[0] is program_code:
            return
        if event.startswith(BLOCKED_AUDIT_PREFIXES):
            raise PermissionError(f"operation '{event}' is not allowed in the sandbox")

    sys.addaudithook(hook)


# Running the program.


def _program_line(error: BaseException) -> int | None:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<program>"]
    return frames[-1].lineno if frames else None


def _truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 15] + " ...[truncated]"


def _describe(error: BaseException) -> str:
    """``Type: message`` for an exception, short even when the program raised a huge one."""
    name = type(error).__name__
    args = error.args
    try:
        if all(type(arg) is str for arg in args):
            detail = str(error)
        else:  # the program's own objects: never let str() of them run unbounded
            detail = _SHORT_REPR.repr(args[0] if len(args) == 1 else args)
    except Exception:  # a broken __str__/__repr__ of a library object
        detail = "<unprintable message>"
    return _truncate(f"{name}: {detail}" if detail else name)


def _as_answer(value: Any) -> str:
    if type(value) is bool:
        return "yes" if value else "no"
    if type(value) in (int, float):
        return str(value)
    if type(value) is str:
        if len(value) > MAX_ANSWER_CHARS:
            raise ValueError(f"the answer is longer than {MAX_ANSWER_CHARS} characters")
        return value
    raise TypeError(
        f"{ENTRY_POINT} returned {type(value).__name__}; return a str (or a number or bool)"
    )


def _failure(kind: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"op": "done", "ok": False, "kind": kind, "message": _truncate(message), "line": line}


def run_program(
    source: str,
    image: dict[str, Any],
    make_api: Callable[..., tuple[Any, dict[str, Any]]],
    builtins_table: dict[str, Any],
    channel: HostChannel,
) -> dict[str, Any]:
    """Check, compile and run ``source``; return the 'done' message for the host."""
    try:
        tree = harden(check_program(source))
    except ProgramRejected as rejected:
        return _failure("rejected", rejected.message, rejected.line)
    code = builtins.compile(tree, "<program>", "exec")
    root, api_names = make_api(channel.call, image)
    seal_imports()
    install_audit_hook(code)
    namespace: dict[str, Any] = {"__builtins__": builtins_table, **api_names}
    try:
        builtins.exec(code, namespace)
        return {"op": "done", "ok": True, "answer": _as_answer(namespace[ENTRY_POINT](root))}
    except ToolCallError as error:
        return _failure("tool_error", str(error), _program_line(error))
    except MemoryError as error:
        namespace.clear()
        return _failure("memory", f"out of memory: {error}".rstrip(": "), _program_line(error))
    except BaseException as error:  # RecursionError, PermissionError from the audit hook, ...
        return _failure("runtime", _describe(error), _program_line(error))


def _load_factory(spec: str) -> Callable[..., tuple[Any, dict[str, Any]]]:
    module_name, _, attribute = spec.partition(":")
    factory: Callable[..., tuple[Any, dict[str, Any]]] = getattr(
        importlib.import_module(module_name), attribute
    )
    return factory


def _parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", required=True, help="module:factory building the program API")
    parser.add_argument("--api-dir", default=None, help="folder to import --api from (tests)")
    parser.add_argument("--jail", default=None, help="empty directory to chroot into (as root)")
    parser.add_argument("--cpu-seconds", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--max-output-chars", type=int, required=True)
    parser.add_argument("--max-tool-calls", type=int, required=True)
    return parser.parse_args(argv)


def _send_report(message: dict[str, Any]) -> None:
    """Send the final report; if it cannot be encoded, send why instead of dying silently."""
    try:
        frame = protocol.encode(message)
    except Exception as error:
        fallback = _failure("runtime", f"the result could not be sent: {_describe(error)}")
        fallback["stdout"] = _truncate(str(message.get("stdout", "")))
        frame = protocol.encode(fallback)
    protocol.write_all(WRITE_FD, frame)


def start(
    options: argparse.Namespace,
) -> tuple[Callable[..., Any], OutputBuffer, dict[str, Any], HostChannel]:
    """Everything before the program arrives: imports, then isolation; report ready."""
    if options.api_dir is not None:  # before isolation: the jail has no files
        sys.path.insert(0, options.api_dir)
    make_api = _load_factory(options.api)
    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    output = OutputBuffer(options.max_output_chars)
    builtins_table = build_builtins(output, build_module_table())
    channel = HostChannel(options.max_tool_calls)
    isolation = drop_privileges(options.jail)
    apply_rlimits(options.cpu_seconds, options.memory_mb)
    sys.setrecursionlimit(len(traceback.extract_stack()) + RECURSION_LIMIT + 50)
    protocol.write_frame(WRITE_FD, {"op": "ready", "isolation": isolation})
    return make_api, output, builtins_table, channel


def main(argv: list[str] | None = None) -> None:
    options = _parse_options(argv)
    try:
        make_api, output, builtins_table, channel = start(options)
    except Exception as error:  # tell the host why, instead of just closing the pipe
        protocol.write_frame(WRITE_FD, {"op": "failed", "error": _describe(error)})
        raise SystemExit(1) from None

    request = protocol.read_frame(READ_FD)
    if request.get("op") != "run":
        raise SystemExit(2)
    message = run_program(
        str(request.get("source", "")), request.get("image") or {}, make_api,
        builtins_table, channel,
    )  # fmt: skip
    message["stdout"] = output.text()
    message["tool_calls"] = channel.calls
    _send_report(message)


if __name__ == "__main__":
    main()
