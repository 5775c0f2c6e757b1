"""Functional tests of the sandbox executor: answers, tool calls, output, pool, failures."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from vpagent.attempts import FailureReason
from vpagent.sandbox import protocol
from vpagent.sandbox.executor import SandboxExecutor, _Worker
from vpagent.sandbox.limits import SandboxLimits

IMAGE = {"id": "img-1", "width": 100, "height": 50}
LIMITS = SandboxLimits(cpu_seconds=2, wall_seconds=10, memory_mb=256)
ESCAPED_API = "escape_drill:build_escaped_api"  # tests/fixtures/escape_drill.py
FIXTURES = Path(__file__).parent / "fixtures"
IS_ROOT = os.geteuid() == 0


def program(body: str, header: str = "") -> str:
    lines = "".join(f"    {line}\n" for line in body.strip("\n").splitlines())
    return f"{header.strip()}\ndef execute_command(image):\n{lines}"


class RecordingHandler:
    """Answers tool calls from a table and records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def __call__(self, tool: str, args: dict[str, Any]) -> Any:
        with self.lock:
            self.calls.append((tool, args))
        if tool == "find":
            return [{"box": [10, 5, 30, 25], "score": 0.75, "label": args["name"]}]
        if tool == "verify_property":
            return args["property"] == "brown"
        if tool == "best_text_match":
            return args["options"][-1]
        if tool == "llm_query":
            return f"answer to {args['question']}"
        if tool == "ocr":
            raise RuntimeError("no text model loaded")
        if tool == "caption":
            return object()  # not plain data
        return "ok"


@pytest.fixture(scope="module")
def executor() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(LIMITS, pool_size=2) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def escaped_executor() -> Iterator[SandboxExecutor]:
    with SandboxExecutor(LIMITS, pool_size=2, api=ESCAPED_API, api_dir=FIXTURES) as sandbox:
        yield sandbox


# Answers.


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        ("return 'a brown dog'", "a brown dog"),
        ("return 3", "3"),
        ("return 2.5", "2.5"),
        ("return True", "yes"),
        ("return False", "no"),
        ("return ''", ""),
        ("return len(image.find('dog'))", "1"),
    ],
)
def test_answers_of_each_type(executor: SandboxExecutor, body: str, answer: str) -> None:
    result = executor.run(program(body), IMAGE, RecordingHandler())
    assert result.ok, result
    assert result.answer == answer
    assert result.error_kind is None and result.error is None
    assert result.duration_s > 0
    assert result.feedback() == f"The program returned {answer!r}."


def test_allowed_library_functions_work(executor: SandboxExecutor) -> None:
    header = """
import math
import re
import statistics
from collections import Counter, defaultdict
from functools import reduce
from itertools import combinations
"""
    body = r"""
counts = Counter(['dog', 'cat', 'dog']).most_common(1)[0][0]
groups = defaultdict(list)
for _ in range(2):
    groups['x'].append(1)
parts = [
    counts,
    str(statistics.median([3, 1, 2])),
    str(reduce(lambda a, b: a + b, [1, 2, 3])),
    str(len(list(combinations('abc', 2)))),
    str(math.floor(math.sqrt(17))),
    re.sub(r'\N{EN DASH}', '-', 'a' + chr(8211) + 'b'),
    str(len(groups['x'])),
]
print('parts', len(parts), sep=': ', flush=True)
return ' '.join(parts)
"""
    result = executor.run(program(body, header), IMAGE, RecordingHandler())
    assert result.ok, result
    assert result.answer == "dog 2 6 3 4 a-b 2"
    assert result.stdout == "parts: 7\n"


# Tool calls.


def test_tool_calls_round_trip_and_are_recorded_as_steps(executor: SandboxExecutor) -> None:
    handler = RecordingHandler()
    body = """
dog = image.find('dog')[0]
brown = dog.verify_property('dog', 'brown')
kind = dog.best_text_match(['puppy', 'terrier'])
fact = llm_query('what do terriers hunt?')
return f'{dog.label} {dog.left:.0f} {brown} {kind} {fact}'
"""
    result = executor.run(program(body), IMAGE, handler)
    assert result.ok, result
    assert result.answer == "dog 10 True terrier answer to what do terriers hunt?"
    assert [step.tool for step in result.steps] == [
        "find",
        "verify_property",
        "best_text_match",
        "llm_query",
    ]
    assert [step.index for step in result.steps] == [0, 1, 2, 3]
    find = result.steps[0]
    assert find.args == {"image": "img-1", "box": [0.0, 0.0, 100.0, 50.0], "name": "dog"}
    assert find.result == [{"box": [10, 5, 30, 25], "score": 0.75, "label": "dog"}]
    assert result.steps[1].args["box"] == [10.0, 5.0, 30.0, 25.0]  # the found patch's box
    assert result.steps[1].result is True
    assert result.steps[3].args == {"question": "what do terriers hunt?"}
    for step in result.steps:
        assert step.ok and step.error is None
        assert 0 <= step.duration_s < 1
    assert [tool for tool, _ in handler.calls] == [step.tool for step in result.steps]


def test_tool_exception_is_a_tool_error_at_the_calling_line(executor: SandboxExecutor) -> None:
    body = "dogs = image.find('dog')\ntext = image.ocr()\nreturn text"
    result = executor.run(program(body), IMAGE, RecordingHandler())
    assert result.error_kind == FailureReason.TOOL_ERROR
    assert result.error == "ocr failed: RuntimeError: no text model loaded"
    assert result.line == 4  # line 1 is the (empty) header, 2 the def
    assert [step.tool for step in result.steps] == ["find", "ocr"]
    assert result.steps[1].error == "RuntimeError: no text model loaded"
    assert not result.steps[1].ok
    assert "(tool_error) at line 4" in result.feedback()


def test_a_program_may_recover_from_a_tool_error(executor: SandboxExecutor) -> None:
    body = "try:\n    return image.ocr()\nexcept Exception as error:\n    return 'no text'"
    result = executor.run(program(body), IMAGE, RecordingHandler())
    assert result.ok and result.answer == "no text"
    assert result.steps[0].error is not None


def test_tool_result_that_is_not_plain_data_is_a_tool_error(executor: SandboxExecutor) -> None:
    result = executor.run(program("return image.caption()"), IMAGE, RecordingHandler())
    assert result.error_kind == FailureReason.TOOL_ERROR
    assert "caption failed" in (result.error or "")
    assert "serialize" in (result.steps[0].error or "")


def test_max_tool_calls() -> None:
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=10, max_tool_calls=3)
    with SandboxExecutor(limits, pool_size=0) as sandbox:
        body = "for _ in range(5):\n    image.find('dog')\nreturn 'done'"
        result = sandbox.run(program(body), IMAGE, RecordingHandler())
    assert result.error_kind == FailureReason.TOOL_ERROR
    assert result.error == "too many tool calls (limit 3)"
    assert result.line == 4
    assert len(result.steps) == 3


# Output.


def test_stdout_is_captured(executor: SandboxExecutor) -> None:
    body = "print('a', 1, image.width)\nprint('b', 'c', sep='-', end='!')\nreturn 'ok'"
    result = executor.run(program(body), IMAGE, RecordingHandler())
    assert result.ok
    assert result.stdout == "a 1 100.0\nb-c!"


def test_stdout_is_truncated_at_the_limit() -> None:
    limits = SandboxLimits(cpu_seconds=2, wall_seconds=10, max_output_chars=20)
    with SandboxExecutor(limits, pool_size=0) as sandbox:
        body = "for i in range(100):\n    print(i)\nreturn 'ok'"
        result = sandbox.run(program(body), IMAGE, RecordingHandler())
    assert result.ok
    expected = "".join(f"{i}\n" for i in range(100))[:20]
    assert result.stdout == expected + "\n[output truncated]"


def test_stdout_is_kept_when_the_program_fails(executor: SandboxExecutor) -> None:
    result = executor.run(program("print('before')\nreturn 1 / 0"), IMAGE, RecordingHandler())
    assert result.error_kind == FailureReason.RUNTIME
    assert result.error == "ZeroDivisionError: division by zero"
    assert result.line == 4
    assert result.stdout == "before\n"


def test_rejected_program_reports_the_line(executor: SandboxExecutor) -> None:
    result = executor.run(program("x = 1\nreturn image._call"), IMAGE, RecordingHandler())
    assert result.error_kind == FailureReason.REJECTED
    assert result.line == 4
    assert result.steps == []


def test_throwaway_underscore_name_is_allowed(executor: SandboxExecutor) -> None:
    body = "n = 0\nfor _ in range(3):\n    n += 1\nreturn n"
    assert executor.run(program(body), IMAGE, RecordingHandler()).answer == "3"


# Isolation between runs.


def test_workers_are_never_reused(escaped_executor: SandboxExecutor) -> None:
    body = """
before = sys_module.modules.get('vp_marker')
sys_module.modules['vp_marker'] = 'set'
return f'{os_module.getpid()} {before}'
"""
    first = escaped_executor.run(program(body), IMAGE, RecordingHandler())
    second = escaped_executor.run(program(body), IMAGE, RecordingHandler())
    assert first.ok and second.ok, (first, second)
    first_pid, first_marker = first.answer.split()
    second_pid, second_marker = second.answer.split()
    assert first_pid != second_pid
    assert first_marker == second_marker == "None"  # the first run's state is gone


def test_program_globals_do_not_leak_between_runs(executor: SandboxExecutor) -> None:
    source = program("seen.append(1)\nreturn len(seen)", "seen = []")
    answers = [executor.run(source, IMAGE, RecordingHandler()).answer for _ in range(2)]
    assert answers == ["1", "1"]


def test_concurrent_runs_from_threads(executor: SandboxExecutor) -> None:
    handler = RecordingHandler()
    results: dict[int, Any] = {}

    def run(index: int) -> None:
        body = f"hits = image.find('thing{index}')\nreturn hits[0].label"
        results[index] = executor.run(program(body), IMAGE, handler)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(results) == [0, 1, 2, 3]
    for index, result in results.items():
        assert result.ok, result
        assert result.answer == f"thing{index}"
        assert [step.args["name"] for step in result.steps] == [f"thing{index}"]


# The pool.


def test_close_kills_idle_workers_and_removes_the_jail() -> None:
    sandbox = SandboxExecutor(LIMITS, pool_size=2)
    assert sandbox.wait_until_warm(timeout=30)
    processes = [worker.process for worker in sandbox._idle]
    assert len(processes) == 2
    assert all(process.poll() is None for process in processes)
    jail = Path(sandbox._jail)
    assert jail.is_dir()
    sandbox.close()
    assert all(process.poll() is not None for process in processes)
    assert not jail.exists()
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.run(program("return 1"), IMAGE, RecordingHandler())


def test_each_worker_is_isolated(executor: SandboxExecutor) -> None:
    isolation = executor.probe_isolation()
    assert "no-new-privs" in isolation
    if IS_ROOT:
        assert {"chroot", "unprivileged-uid"} <= set(isolation)


@pytest.mark.skipif(not IS_ROOT, reason="uids are only changed when the host runs as root")
def test_workers_run_under_distinct_unprivileged_uids() -> None:
    with SandboxExecutor(LIMITS, pool_size=2) as sandbox:
        assert sandbox.wait_until_warm(timeout=30)
        uids = set()
        for worker in sandbox._idle:
            status = Path(f"/proc/{worker.process.pid}/status").read_text()
            uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
            uids.add(int(uid_line.split()[1]))
    assert len(uids) == 2 and 0 not in uids


@pytest.mark.parametrize(
    ("api", "message"),
    [
        (
            "vpagent.sandbox.no_such_module:build",
            "No module named 'vpagent.sandbox.no_such_module'",
        ),
        ("vpagent.tools.image_patch:no_such_factory", "AttributeError"),
    ],
)
def test_worker_that_fails_to_start_is_reported(api: str, message: str) -> None:
    with SandboxExecutor(LIMITS, pool_size=1, api=api) as sandbox:
        result = sandbox.run(program("return 1"), IMAGE, RecordingHandler())
        again = sandbox.run(program("return 1"), IMAGE, RecordingHandler())
    for outcome in (result, again):
        assert outcome.error_kind == FailureReason.CRASHED
        assert (outcome.error or "").startswith("the sandbox worker failed to start: ")
        assert message in (outcome.error or "")


# Hostile workers: the host validates everything a worker sends.

FAKE_WORKER = r"""
import os, struct, sys, time
import msgpack

def send_raw(data):
    os.write(1, data)

def send(message):
    data = msgpack.packb(message, use_bin_type=True)
    send_raw(struct.pack('>I', len(data)) + data)

def receive():
    size = struct.unpack('>I', os.read(0, 4))[0]
    data = b''
    while len(data) < size:
        data += os.read(0, size - len(data))
    return msgpack.unpackb(data)

mode = sys.argv[1]
if mode == 'silent-start':
    time.sleep(60)
if mode == 'failed-start':
    send({'op': 'failed', 'error': 'ImportError: boom'})
    sys.exit(1)
if mode == 'exit-start':
    sys.exit(3)
send({'op': 'ready', 'isolation': ['fake']})
receive()
if mode == 'garbage':
    send_raw(b'\xff' * 64)
elif mode == 'huge-frame':
    send_raw(struct.pack('>I', 2 ** 31))
elif mode == 'not-a-map':
    data = msgpack.packb([1, 2, 3])
    send_raw(struct.pack('>I', len(data)) + data)
elif mode == 'bad-msgpack':
    send_raw(struct.pack('>I', 3) + b'\xc1\xc1\xc1')
elif mode == 'bytes-keys':
    send({'op': 'call', 'tool': 'find', 'args': {b'\xff\xfe': 1}})
elif mode == 'bad-tool':
    send({'op': 'call', 'tool': 7, 'args': {}})
elif mode == 'unknown-op':
    send({'op': 'shell', 'command': 'id'})
elif mode == 'exit-mid-run':
    sys.exit(3)
elif mode == 'close-pipe':
    os.close(1)
elif mode == 'bad-done':
    send({'op': 'done', 'ok': False, 'kind': 'pwned', 'message': ['x'], 'line': 'seven'})
elif mode == 'odd-answer':
    send({'op': 'done', 'ok': True, 'answer': [1, 2], 'stdout': 5})
    sys.exit(0)
time.sleep(60)
"""


class FakeWorkerExecutor(SandboxExecutor):
    """Starts a scripted fake worker instead of the real one."""

    def __init__(self, mode: str, limits: SandboxLimits) -> None:
        self.mode = mode
        self.spawned: list[subprocess.Popen[bytes]] = []
        super().__init__(limits, pool_size=0)

    def _spawn(self) -> _Worker:
        process = subprocess.Popen(
            [sys.executable, "-c", FAKE_WORKER, self.mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        self.spawned.append(process)
        return _Worker(process, time.monotonic() + self.limits.startup_seconds)


@pytest.mark.parametrize(
    ("mode", "kind", "message"),
    [
        ("garbage", FailureReason.CRASHED, "broke the protocol"),
        ("huge-frame", FailureReason.CRASHED, "exceeds"),
        ("not-a-map", FailureReason.CRASHED, "not a message"),
        ("bad-msgpack", FailureReason.CRASHED, "undecodable"),
        ("bytes-keys", FailureReason.CRASHED, "argument names must be strings"),
        ("bad-tool", FailureReason.CRASHED, "malformed tool call"),
        ("unknown-op", FailureReason.CRASHED, "unexpected message 'shell'"),
        ("exit-mid-run", FailureReason.CRASHED, "exit code 3"),
        ("close-pipe", FailureReason.CRASHED, "broke the protocol"),
        ("bad-done", FailureReason.CRASHED, "['x']"),
        ("silent-start", FailureReason.CRASHED, "did not report ready in time"),
        ("failed-start", FailureReason.CRASHED, "ImportError: boom"),
        ("exit-start", FailureReason.CRASHED, "exited during start-up (exit code 3)"),
        ("silent-run", FailureReason.TIMEOUT, "longer than 1 s"),
    ],
)
def test_hostile_worker_cannot_crash_the_host(mode: str, kind: FailureReason, message: str) -> None:
    startup = 1 if mode == "silent-start" else 10  # generous, for a loaded machine
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=1, startup_seconds=startup)
    with FakeWorkerExecutor(mode, limits) as sandbox:
        started = time.monotonic()
        result = sandbox.run(program("return 1"), IMAGE, RecordingHandler())
        assert time.monotonic() - started < startup + limits.wall_seconds + 1
    assert result.error_kind == kind, result
    assert message in (result.error or ""), result
    assert result.line is None
    for process in sandbox.spawned:  # killed (a fake worker otherwise sleeps for a minute)
        process.wait(timeout=5)


def test_hostile_worker_with_an_odd_report_yields_plain_strings() -> None:
    limits = SandboxLimits(cpu_seconds=1, wall_seconds=2, startup_seconds=2)
    with FakeWorkerExecutor("odd-answer", limits) as sandbox:
        result = sandbox.run(program("return 1"), IMAGE, RecordingHandler())
    assert result.ok and result.answer == "[1, 2]" and result.stdout == "5"


# The wire format.


def test_frames_round_trip_plain_data() -> None:
    message = {"op": "call", "tool": "find", "args": {"name": "dog", "box": [1.5, 2, 3, 4]}}
    frame = protocol.encode(message)
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert protocol.decode(frame[4:]) == message


@pytest.mark.parametrize(
    "payload", [msgpack.packb([1, 2]), msgpack.packb({"op": 1}), b"\xc1", msgpack.packb({1: 2})]
)
def test_decode_refuses_anything_but_a_message(payload: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(payload)


def test_encode_refuses_live_objects() -> None:
    with pytest.raises(TypeError):
        protocol.encode({"op": "reply", "value": object()})


def test_deadline_bounded_reads() -> None:
    def pipe() -> tuple[int, int]:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        return read_end, write_end

    silent, silent_writer = pipe()
    with pytest.raises(protocol.DeadlineExceeded):
        protocol.read_frame_until(silent, time.monotonic() + 0.05)
    waiting, waiting_writer = pipe()
    os.write(waiting_writer, protocol.encode({"op": "call"}))
    with pytest.raises(protocol.DeadlineExceeded):  # a frame at hand does not reopen a deadline
        protocol.read_frame_until(waiting, time.monotonic() - 0.01)
    with pytest.raises(protocol.DeadlineExceeded):
        protocol.write_all_until(waiting_writer, protocol.encode({"op": "reply"}), time.monotonic())
    big, big_writer = pipe()
    os.write(big_writer, protocol.encode({"op": "x", "data": "y" * 100}))
    with pytest.raises(protocol.ProtocolError, match="exceeds 50"):
        protocol.read_frame_until(big, time.monotonic() + 1, max_bytes=50)
    closed, closed_writer = pipe()
    os.close(closed_writer)
    with pytest.raises(protocol.PeerClosed):
        protocol.read_frame_until(closed, time.monotonic() + 1)
    for fd in (silent, silent_writer, waiting, waiting_writer, big, big_writer, closed):
        os.close(fd)


def test_a_spare_worker_cut_short_by_close_is_not_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """close() removes the jail under a worker that is still starting: that start fails by
    design and says nothing; a start that fails on an open executor is still logged."""
    release = threading.Event()

    def spawn_into_a_gone_jail(self: SandboxExecutor) -> _Worker:
        release.wait(10)
        raise FileNotFoundError(2, "No such file or directory", self._jail)

    monkeypatch.setattr(SandboxExecutor, "_spawn", spawn_into_a_gone_jail)
    caplog.set_level("INFO", logger="vpagent.sandbox.executor")
    executor = SandboxExecutor(pool_size=1)
    executor.close()
    release.set()
    assert executor.wait_until_warm(timeout=10)  # closed: returns at once
    deadline = time.monotonic() + 10
    while executor._starting and time.monotonic() < deadline:
        time.sleep(0.01)
    assert executor._starting == 0
    assert "did not start" not in caplog.text

    release.clear()
    executor = SandboxExecutor(pool_size=1)
    try:
        release.set()
        deadline = time.monotonic() + 10
        while executor._starting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert "a spare sandbox worker did not start" in caplog.text
    finally:
        executor.close()
