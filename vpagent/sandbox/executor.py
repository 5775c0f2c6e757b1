"""Host side of the sandbox: a warm pool of one-shot workers and the call loop.

Each program runs in its own fresh worker process (never reused, so a program cannot taint
the next one). A few workers are started ahead of time, in the background, so a run does not
pay interpreter start-up. Tool calls arrive as plain data and are answered by a host callback;
each becomes a :class:`~vpagent.trace.records.Step`. Everything a worker sends is untrusted:
it is size-limited, validated, and a worker that breaks the protocol is killed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vpagent.attempts import FailureReason, bounded_traceback, describe_error
from vpagent.sandbox import protocol
from vpagent.sandbox.limits import EXIT_GRACE_SECONDS, MAX_ERROR_CHARS, max_worker_frame_bytes
from vpagent.sandbox.limits_model import SandboxLimits
from vpagent.sandbox.policy import ProgramRejected, check_program
from vpagent.sandbox.result import ExecutionResult
from vpagent.tools.errors import CannotAnswer
from vpagent.trace.records import Step

ToolHandler = Callable[[str, dict[str, Any]], Any]
"""Answers one tool call (name, plain-data arguments) with plain data; raises on failure."""

DEFAULT_API = "vpagent.tools.image_patch:build_program_api"
EXIT_POLL_SECONDS = 0.005
MEMORY_SIGNALS = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS)

log = logging.getLogger(__name__)


class WorkerStartError(RuntimeError):
    """A worker could not start (bad API factory, failed isolation step, slow start-up)."""


class _Worker:
    """One started worker process and the host's ends of its pipes."""

    def __init__(self, process: subprocess.Popen[bytes], ready_deadline: float) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self.to_worker = process.stdin.fileno()
        self.from_worker = process.stdout.fileno()
        os.set_blocking(self.to_worker, False)
        os.set_blocking(self.from_worker, False)
        self.ready_deadline = ready_deadline
        self.isolation: list[str] = []
        self.cpu_seconds: float | None = None

    def wait_ready(self) -> None:
        """Block until the worker reports ready; raise :class:`WorkerStartError` otherwise."""
        try:
            message = protocol.read_frame_until(self.from_worker, self.ready_deadline)
        except protocol.DeadlineExceeded:
            raise WorkerStartError("the worker did not report ready in time") from None
        except protocol.PeerClosed:
            code = self.wait_exit(EXIT_GRACE_SECONDS)
            raise WorkerStartError(
                f"the worker exited during start-up (exit code {code})"
            ) from None
        except (protocol.ProtocolError, OSError) as error:
            raise WorkerStartError(f"the worker sent a bad start-up message: {error}") from None
        if message.get("op") == "failed":
            raise WorkerStartError(str(message.get("error", "unknown error"))[:MAX_ERROR_CHARS])
        if message.get("op") != "ready":
            raise WorkerStartError(f"the worker sent {message.get('op')!r} instead of 'ready'")
        self.isolation = [str(item) for item in message.get("isolation", [])]

    def wait_exit(self, timeout: float) -> int | None:
        """Reap the worker if it exits within ``timeout``; its exit code, or None if alive.

        Uses wait4 so the CPU time the worker used is known (to tell a CPU kill from others).
        """
        if self.process.returncode is not None:
            return self.process.returncode
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                return self.process.poll()
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self.cpu_seconds = usage.ru_utime + usage.ru_stime
                return self.process.returncode
            if time.monotonic() >= deadline:
                return None
            time.sleep(EXIT_POLL_SECONDS)

    def kill(self, *, wait: bool = True) -> None:
        """Kill the worker and its process group and close the pipes; reap it if ``wait``."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            if wait:
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SandboxExecutor:
    """Runs untrusted programs in isolated one-shot worker processes.

    Thread-safe: concurrent :meth:`run` calls each take their own worker. ``pool_size``
    workers are kept started and ready; a run that finds none waits for one that is starting,
    or starts its own. ``api`` (``module:factory``) builds the program API in the worker;
    ``api_dir`` is a folder to import it from (the tests' hostile API, which does not ship).
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        pool_size: int = 2,
        api: str = DEFAULT_API,
        api_dir: Path | None = None,
    ) -> None:
        self.limits = limits or SandboxLimits()
        self.api = api
        self.api_dir = api_dir
        self.pool_size = pool_size
        self._frame_limit = max_worker_frame_bytes(self.limits.max_output_chars)
        self._jail = tempfile.mkdtemp(prefix="vpagent-jail-")
        os.chmod(self._jail, 0o555)
        self._pool = threading.Condition()
        self._idle: deque[_Worker] = deque()
        self._starting = 0
        self._closed = False
        for _ in range(pool_size):
            self._refill_async()

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
            *(["--api-dir", str(self.api_dir)] if self.api_dir is not None else []),
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

    def _start_ready_worker(self) -> _Worker:
        worker = self._spawn()
        try:
            worker.wait_ready()
        except BaseException:
            worker.kill()
            raise
        return worker

    def _refill_async(self, reap: _Worker | None = None) -> None:
        """In the background: reap ``reap`` (a killed worker), then, if the pool is short,
        start one worker and add it to the pool once it is ready."""
        with self._pool:
            needed = not self._closed and len(self._idle) + self._starting < self.pool_size
            if needed:
                self._starting += 1
        if needed or reap is not None:
            threading.Thread(
                target=self._refill, args=(needed, reap), name="vpagent-sandbox-refill", daemon=True
            ).start()

    def _refill(self, needed: bool, reap: _Worker | None) -> None:
        if reap is not None:  # off the caller's path: teardown of a process takes milliseconds
            reap.process.wait()
        if not needed:
            return
        worker: _Worker | None = None
        failure: Exception | None = None
        try:
            worker = self._start_ready_worker()
        except (WorkerStartError, OSError) as error:
            failure = error  # a run that needs a worker starts its own and reports why
        with self._pool:
            self._starting -= 1
            closed = self._closed
            if worker is not None and not closed:
                self._idle.append(worker)
                worker = None
            self._pool.notify_all()
        if failure is not None and not closed:  # close() removed the jail under a start: no news
            log.info("a spare sandbox worker did not start: %s", failure)
        if worker is not None:  # closed meanwhile
            worker.kill()

    def _take_worker(self) -> _Worker:
        """A ready worker: from the pool, else one that is starting, else a new one."""
        deadline = time.monotonic() + self.limits.startup_seconds
        with self._pool:
            while True:
                if self._closed:
                    raise RuntimeError("the sandbox executor is closed")
                if self._idle:
                    return self._idle.popleft()
                left = deadline - time.monotonic()
                if self._starting == 0 or left <= 0:
                    break
                self._pool.wait(left)
        return self._start_ready_worker()

    def wait_until_warm(self, timeout: float | None = None) -> bool:
        """Block until ``pool_size`` ready workers are idle; False if ``timeout`` ran out."""
        with self._pool:
            return self._pool.wait_for(
                lambda: self._closed or len(self._idle) >= self.pool_size, timeout
            )

    def probe_isolation(self) -> list[str]:
        """Start one worker and return the isolation layers it could apply on this machine."""
        worker = self._take_worker()
        try:
            return list(worker.isolation)
        finally:
            worker.kill()
            self._refill_async()

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
                ok=False,
                error_kind=FailureReason.REJECTED,
                error=rejected.message,
                line=rejected.line,
            )
        try:
            worker = self._take_worker()
        except (WorkerStartError, OSError) as error:
            log.error("the sandbox worker failed to start: %s", error)
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.CRASHED,
                error=f"the sandbox worker failed to start: {error}",
            )
        steps: list[Step] = []
        try:
            result = self._converse(worker, source, image, handle_call, steps)
        finally:
            worker.kill(wait=False)
            self._refill_async(reap=worker)
        result.steps = steps
        result.duration_s = time.monotonic() - started
        if result.error_kind == FailureReason.TOOL_ERROR:  # the tool's own traceback
            result.traceback = next(
                (step.traceback for step in reversed(steps) if step.traceback), None
            )
        return result

    def _converse(
        self,
        worker: _Worker,
        source: str,
        image: dict[str, Any],
        handle_call: ToolHandler,
        steps: list[Step],
    ) -> ExecutionResult:
        deadline = time.monotonic() + self.limits.wall_seconds  # waiting for a worker is free
        try:
            request = {"op": "run", "source": source, "image": image}
            protocol.write_frame_until(worker.to_worker, request, deadline)
            while True:
                message = protocol.read_frame_until(worker.from_worker, deadline, self._frame_limit)
                if message["op"] == "done":
                    return _result_from_done(message)
                if message["op"] != "call":
                    raise protocol.ProtocolError(f"unexpected message {message['op']!r}")
                if len(steps) >= self.limits.max_tool_calls:
                    raise protocol.ProtocolError("the worker exceeded the tool-call limit")
                reply = _answer_call(message, handle_call, steps)
                protocol.write_all_until(worker.to_worker, reply, deadline)
        except protocol.DeadlineExceeded:
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.TIMEOUT,
                error=f"the program ran longer than {self.limits.wall_seconds:g} s and was killed",
            )
        except (protocol.ProtocolError, OSError) as error:
            result = self._died(worker, error)
            log.warning("%s", result.error)
            return result

    def _died(self, worker: _Worker, error: BaseException) -> ExecutionResult:
        """Classify a worker that stopped talking: CPU limit, memory, crash or misbehaviour."""
        closed = isinstance(error, protocol.PeerClosed | BrokenPipeError)
        code = worker.wait_exit(EXIT_GRACE_SECONDS) if closed else None
        worker.kill()
        if code is None:  # still alive: it sent garbage, or closed its pipe on purpose
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.CRASHED,
                error=f"the sandbox worker broke the protocol and was killed: {error}",
            )
        used = worker.cpu_seconds or 0.0
        if code == -signal.SIGXCPU or (code == -signal.SIGKILL and used >= self.limits.cpu_seconds):
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.TIMEOUT,
                error=f"the program used more than {self.limits.cpu_seconds} s of CPU "
                "and was killed",
            )
        if -code in MEMORY_SIGNALS:
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.MEMORY,
                error=f"the worker died with signal {-code} (likely its "
                f"{self.limits.memory_mb} MB memory limit)",
            )
        if code < 0:  # SIGKILL below the CPU limit: the kernel's OOM killer, or itself
            return ExecutionResult(
                ok=False,
                error_kind=FailureReason.CRASHED,
                error=f"the sandbox worker was killed by signal {-code}",
            )
        return ExecutionResult(
            ok=False,
            error_kind=FailureReason.CRASHED,
            error=f"the sandbox worker stopped unexpectedly (exit code {code}): {error}",
        )

    def close(self) -> None:
        """Kill idle workers and remove the jail directory. Workers still starting are
        killed as soon as they are ready."""
        with self._pool:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._pool.notify_all()
        for worker in idle:
            worker.kill()
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


def _answer_call(message: dict[str, Any], handle_call: ToolHandler, steps: list[Step]) -> bytes:
    """Answer one tool call; return the encoded reply frame. Records a step."""
    tool = message.get("tool")
    args = message.get("args")
    if not isinstance(tool, str) or not isinstance(args, dict):
        raise protocol.ProtocolError("malformed tool call")
    if not all(isinstance(key, str) for key in args):
        raise protocol.ProtocolError("tool-call argument names must be strings")
    started = time.perf_counter()
    step = Step(index=len(steps), tool=tool, args=args)
    try:
        value = handle_call(tool, args)
        frame = protocol.encode({"op": "reply", "ok": True, "value": value})
    except Exception as error:  # a tool failure fails this program only
        step.error = describe_error(error)
        if isinstance(error, CannotAnswer):  # an answer, of a kind: not a fault to look into
            step.error_kind = FailureReason.CANNOT_ANSWER
        else:
            step.error_kind = FailureReason.TOOL_ERROR
            step.traceback = bounded_traceback(error)
            log.warning("tool %s failed", tool, exc_info=error)
        frame = protocol.encode(
            {"op": "reply", "ok": False, "error": f"{tool} failed: {step.error}"}
        )
    else:
        step.result = value
    step.duration_s = time.perf_counter() - started
    steps.append(step)
    return frame


def _result_from_done(message: dict[str, Any]) -> ExecutionResult:
    stdout = str(message.get("stdout", ""))
    if message.get("ok"):
        return ExecutionResult(ok=True, answer=str(message.get("answer")), stdout=stdout)
    try:
        kind = FailureReason(str(message.get("kind")))
    except ValueError:
        log.warning("the worker reported an unknown failure kind %r", message.get("kind"))
        kind = FailureReason.CRASHED
    line = message.get("line")
    text = str(message.get("message") or "")
    return ExecutionResult(
        ok=False,
        error_kind=kind,
        error=text or f"the worker reported a {kind.value} failure without a message",
        line=line if isinstance(line, int) else None,
        stdout=stdout,
    )
