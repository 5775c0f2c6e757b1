"""Host side of the sandbox: a warm pool of one-shot workers and the call loop.

Each program runs in its own fresh worker process (never reused, so a program cannot taint
the next one). A few workers are started ahead of time so a run does not pay interpreter
start-up. Tool calls arrive as plain data and are answered by a host callback; each becomes a
:class:`~vpagent.trace.records.Step`.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from vpagent.sandbox import protocol
from vpagent.sandbox.limits import SandboxLimits
from vpagent.sandbox.policy import ProgramRejected, check_program
from vpagent.sandbox.result import ErrorKind, ExecutionResult
from vpagent.trace.records import Step

ToolHandler = Callable[[str, dict[str, Any]], Any]
"""Answers one tool call (name, plain-data arguments) with plain data; raises on failure."""

DEFAULT_API = "tools.image_patch:build_program_api"


class _Worker:
    """One started worker process and the host's ends of its pipes."""

    def __init__(self, process: subprocess.Popen[bytes], ready_deadline: float) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.to_worker = process.stdin.fileno()
        self.from_worker = process.stdout.fileno()
        os.set_blocking(self.to_worker, False)
        self.ready_deadline = ready_deadline
        self.isolation: list[str] = []

    def wait_ready(self) -> None:
        message = protocol.read_frame_until(self.from_worker, self.ready_deadline)
        if message.get("op") != "ready":
            raise protocol.ProtocolError("worker did not report ready")
        self.isolation = [str(item) for item in message.get("isolation", [])]

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SandboxExecutor:
    """Runs untrusted programs in isolated one-shot worker processes.

    Thread-safe: concurrent :meth:`run` calls each take their own worker.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        pool_size: int = 2,
        api: str = DEFAULT_API,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.api = api
        self.pool_size = pool_size
        self._jail = tempfile.mkdtemp(prefix="vpagent-jail-")
        os.chmod(self._jail, 0o555)
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._closed = False
        self._refill_lock = threading.Lock()
        for _ in range(pool_size):
            self._idle.put(self._spawn())

    # Pool management.

    def _spawn(self) -> _Worker:
        limits = self.limits
        command = [
            sys.executable, "-I", "-m", "vpagent.sandbox.worker",
            "--api", self.api,
            "--jail", self._jail,
            "--cpu-seconds", str(limits.cpu_seconds),
            "--memory-mb", str(limits.memory_mb),
            "--max-output-chars", str(limits.max_output_chars),
            "--max-tool-calls", str(limits.max_tool_calls),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,
            cwd=self._jail,
            env=_worker_environment(),
        )
        return _Worker(process, time.monotonic() + limits.startup_seconds)

    def _refill_async(self) -> None:
        if self._closed or self.pool_size == 0:
            return

        def refill() -> None:
            with self._refill_lock:
                if not self._closed:
                    self._idle.put(self._spawn())

        threading.Thread(target=refill, name="vpagent-sandbox-refill", daemon=True).start()

    def _take_worker(self) -> _Worker:
        if self._closed:
            raise RuntimeError("the sandbox executor is closed")
        try:
            worker = self._idle.get_nowait()
        except queue.Empty:
            worker = self._spawn()
        else:
            self._refill_async()
        worker.ready_deadline = max(
            worker.ready_deadline, time.monotonic() + self.limits.startup_seconds
        )
        worker.wait_ready()
        return worker

    # Running programs.

    def run(self, source: str, image: dict[str, Any], handle_call: ToolHandler) -> ExecutionResult:
        """Run ``source`` (defining ``execute_command(image)``) against ``image``.

        ``image`` is the plain-data description the worker's API factory receives (an id and
        the size). Every failure mode becomes an :class:`ExecutionResult` with an error kind.
        """
        started = time.monotonic()
        try:
            check_program(source)
        except ProgramRejected as rejected:
            return ExecutionResult(
                ok=False, error_kind=ErrorKind.REJECTED, error=rejected.message, line=rejected.line
            )
        try:
            worker = self._take_worker()
        except (protocol.ProtocolError, protocol.DeadlineExceeded, OSError) as error:
            return ExecutionResult(
                ok=False,
                error_kind=ErrorKind.CRASHED,
                error=f"the sandbox worker failed to start: {error!r}",
            )
        steps: list[Step] = []
        try:
            result = self._converse(worker, source, image, handle_call, steps, started)
        finally:
            worker.kill()
        result.steps = steps
        result.duration_s = time.monotonic() - started
        return result

    def _converse(
        self,
        worker: _Worker,
        source: str,
        image: dict[str, Any],
        handle_call: ToolHandler,
        steps: list[Step],
        started: float,
    ) -> ExecutionResult:
        deadline = started + self.limits.wall_seconds
        try:
            request = {"op": "run", "source": source, "image": image}
            protocol.write_frame_until(worker.to_worker, request, deadline)
            while True:
                message = protocol.read_frame_until(worker.from_worker, deadline)
                if message["op"] == "done":
                    return _result_from_done(message)
                if message["op"] != "call":
                    raise protocol.ProtocolError(f"unexpected message {message['op']!r}")
                reply = _answer_call(message, handle_call, steps)
                protocol.write_frame_until(worker.to_worker, reply, deadline)
        except protocol.DeadlineExceeded:
            return ExecutionResult(
                ok=False,
                error_kind=ErrorKind.TIMEOUT,
                error=f"the program ran longer than {self.limits.wall_seconds:g} s and was killed",
            )
        except (protocol.ProtocolError, OSError) as error:
            return self._died(worker, error)

    def _died(self, worker: _Worker, error: BaseException) -> ExecutionResult:
        """Classify a worker that stopped talking: CPU limit, memory, or a crash."""
        worker.kill()
        code = worker.process.returncode
        if code in (-signal.SIGXCPU, -signal.SIGKILL):
            return ExecutionResult(
                ok=False,
                error_kind=ErrorKind.TIMEOUT,
                error=f"the program used more than {self.limits.cpu_seconds} s of CPU "
                "and was killed",
            )
        if code in (-signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS):
            return ExecutionResult(
                ok=False,
                error_kind=ErrorKind.MEMORY,
                error=f"the worker died with signal {-code} (likely its "
                f"{self.limits.memory_mb} MB memory limit)",
            )
        return ExecutionResult(
            ok=False,
            error_kind=ErrorKind.CRASHED,
            error=f"the sandbox worker stopped unexpectedly (exit code {code}): {error}",
        )

    def close(self) -> None:
        """Kill idle workers and remove the jail directory."""
        self._closed = True
        with self._refill_lock:
            while True:
                try:
                    self._idle.get_nowait().kill()
                except queue.Empty:
                    break
        shutil.rmtree(self._jail, ignore_errors=True)

    def __enter__(self) -> SandboxExecutor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def _worker_environment() -> dict[str, str]:
    """A minimal environment: nothing secret from the host reaches the worker."""
    keep = ("PATH", "LANG", "LC_ALL", "VPAGENT_CACHE_DIR")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _answer_call(message: dict[str, Any], handle_call: ToolHandler, steps: list[Step]) -> dict:
    tool = message.get("tool")
    args = message.get("args")
    if not isinstance(tool, str) or not isinstance(args, dict):
        raise protocol.ProtocolError("malformed tool call")
    started = time.perf_counter()
    step = Step(index=len(steps), tool=tool, args=args)
    try:
        value = handle_call(tool, args)
    except Exception as error:  # a tool failure fails this program only
        step.error = f"{type(error).__name__}: {error}"
        reply = {"op": "reply", "ok": False, "error": f"{tool} failed: {step.error}"}
    else:
        step.result = value
        reply = {"op": "reply", "ok": True, "value": value}
    step.duration_s = time.perf_counter() - started
    steps.append(step)
    return reply


def _result_from_done(message: dict[str, Any]) -> ExecutionResult:
    stdout = str(message.get("stdout", ""))
    if message.get("ok"):
        return ExecutionResult(ok=True, answer=str(message.get("answer")), stdout=stdout)
    try:
        kind = ErrorKind(message.get("kind"))
    except ValueError:
        kind = ErrorKind.CRASHED
    line = message.get("line")
    return ExecutionResult(
        ok=False,
        error_kind=kind,
        error=str(message.get("message", "")),
        line=line if isinstance(line, int) else None,
        stdout=stdout,
    )
