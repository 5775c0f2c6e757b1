"""Random and mutated messages on the host-worker pipe never crash the host.

Three levels, cheapest first: the frame decoder and the host's readers of ``call``/``done``
messages on arbitrary data; the program host (tools/program_host.py) on arbitrary tool calls;
and the real executor reading whatever a worker that escaped the AST check writes to its pipe
(tests/fixtures/escape_drill.py hands it ``os``). The host must answer every one with a typed
result (an error kind and a message), never an exception, and keep serving the next program.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.fakes import BoxFillSegmenter, BrightSpotDetector, EchoVQA, RednessMatcher
from tests.property_settings import fixed, fresh
from vpagent.attempts import FailureReason
from vpagent.config import load_settings
from vpagent.sandbox import protocol
from vpagent.sandbox.executor import SandboxExecutor, _answer_call, _result_from_done
from vpagent.sandbox.limits import MAX_FRAME_BYTES
from vpagent.sandbox.limits_model import SandboxLimits
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.toolbox import Toolbox
from vpagent.trace.records import Step

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE = {"id": "img", "width": 100, "height": 50}
LIMITS = SandboxLimits(cpu_seconds=1, wall_seconds=5, memory_mb=256, max_tool_calls=20)
TOOLS = ["find", "verify_property", "best_text_match", "simple_query", "caption", "ocr",
         "compute_depth", "segment", "llm_query", "locate", "marks", "rm_rf"]  # fmt: skip
OPS = ["call", "done", "ready", "reply", "failed", "run", ""]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),  # NaN and infinities included
    st.text(max_size=20),
    st.binary(max_size=20),
)
plain = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
boxes = st.one_of(st.lists(st.floats(), min_size=4, max_size=4), plain)
tool_args = st.fixed_dictionaries(
    {},
    optional={
        "image": st.one_of(st.just("ID"), plain),
        "box": boxes,
        "name": st.one_of(st.sampled_from(["spot", "dog", "", " "]), plain),
        "property": st.one_of(st.text(max_size=30), plain),
        "options": st.one_of(st.lists(st.text(max_size=10), max_size=3), plain),
        "question": st.one_of(st.text(max_size=40), plain),
        "thorough": st.one_of(st.booleans(), plain),
    },
)
messages = st.one_of(
    st.fixed_dictionaries(
        {"op": st.sampled_from(OPS)},
        optional={
            "tool": st.one_of(st.sampled_from(TOOLS), plain),
            "args": st.one_of(tool_args, plain),
            "ok": plain,
            "answer": plain,
            "kind": st.one_of(st.sampled_from([k.value for k in FailureReason]), plain),
            "message": plain,
            "line": plain,
            "stdout": plain,
        },
    ),
    plain,
)


def frame_of(message: Any) -> bytes:
    """The encoded frame of any plain data (the protocol only encodes maps: pack it here)."""
    import msgpack

    payload = msgpack.packb(message, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def mutated(frame: bytes, edits: list[tuple[int, int]]) -> bytes:
    """``frame`` with bytes overwritten (position, value), some cut off, or a lying header."""
    data = bytearray(frame)
    for position, value in edits:
        if value == 256:  # cut here
            del data[position % (len(data) + 1) :]
        elif data:
            data[position % len(data)] = value
    return bytes(data)


mutated_frames = st.builds(
    mutated,
    messages.map(frame_of),
    st.lists(st.tuples(st.integers(0, 64), st.integers(0, 256)), max_size=4),
)


# Level 1: the host's readers of frames and messages, on anything.


@fixed(2_000)
@given(st.one_of(st.binary(max_size=64), mutated_frames))
def test_decoding_any_bytes_gives_a_message_or_a_protocol_error(data: bytes) -> None:
    try:
        message = protocol.decode(data[4:])
    except protocol.ProtocolError:
        return
    assert isinstance(message, dict) and isinstance(message["op"], str)


@fixed(2_000)
@given(messages.filter(lambda m: isinstance(m, dict)))
def test_any_done_message_becomes_a_typed_result(message: dict[str, Any]) -> None:
    result = _result_from_done(message)
    assert result.ok == bool(message.get("ok"))
    assert result.ok or (result.error_kind is not None and result.error)


# Level 2: the program host on any tool call.


@pytest.fixture(scope="module")
def host() -> ProgramHost:
    settings = load_settings()
    specialists = {
        "detector": BrightSpotDetector(),
        "matcher": RednessMatcher(),
        "vqa": EchoVQA(),
        "segmenter": BoxFillSegmenter(),
    }
    toolbox = Toolbox(settings.toolbox_config(), specialists=specialists, llm=str)
    pixels = np.zeros((60, 80, 3), dtype=np.uint8)
    pixels[20:30, 10:20] = 255
    return ProgramHost(toolbox, pixels, image_id="ID")


@fixed(1_000)
@given(st.sampled_from(TOOLS), tool_args)
def test_the_program_host_answers_or_refuses_any_tool_call(
    host: ProgramHost, tool: str, args: dict[str, Any]
) -> None:
    """Validation stops every bad call with a ValueError (or a CannotAnswer) that says why;
    nothing else escapes, and what it answers can be sent back over the pipe."""
    try:
        value = host(tool, args)
    except (ValueError, CannotAnswer) as refusal:
        assert str(refusal)
        return
    protocol.encode({"op": "reply", "ok": True, "value": value})


@fixed(1_000)
@given(messages)
def test_any_call_message_is_answered_or_refused_as_a_protocol_error(
    host: ProgramHost, message: Any
) -> None:
    steps: list[Step] = []
    try:
        reply = _answer_call(message if isinstance(message, dict) else {}, host, steps)
    except protocol.ProtocolError:
        assert steps == []
        return
    assert len(steps) == 1 and len(reply) <= MAX_FRAME_BYTES + 4
    answer = protocol.decode(reply[4:])
    assert answer["op"] == "reply" and (answer["ok"] or steps[0].error)


# Level 3: the executor reading what an escaped worker writes to its pipe.


@pytest.fixture(scope="module")
def escaped() -> Iterator[SandboxExecutor]:
    api = "escape_drill:build_escaped_api"  # tests/fixtures/escape_drill.py: hands it os
    with SandboxExecutor(LIMITS, pool_size=2, api=api, api_dir=FIXTURES) as sandbox:
        yield sandbox


ENDINGS = {
    "die": "signal_module.raise_signal(9)",
    "close": "os_module.close(1)\nwhile True:\n    pass",
    "hang": "while True:\n    pass",
    "answer": "return 'done'",
}


def writes(data: bytes, ending: str) -> str:
    body = f"os_module.write(1, {data!r})\n{ENDINGS[ending]}"
    return "def execute_command(image):\n" + "".join(f"    {line}\n" for line in body.split("\n"))


def run_and_expect_a_typed_failure(sandbox: SandboxExecutor, data: bytes, ending: str) -> None:
    result = sandbox.run(writes(data, ending), IMAGE, lambda tool, args: "ok")
    assert result.ok or result.error_kind in (
        FailureReason.CRASHED,
        FailureReason.TIMEOUT,
        FailureReason.RUNTIME,
        FailureReason.TOOL_ERROR,
    ), result
    if not result.ok:
        assert result.error
    if result.ok:  # the bytes happened to be a whole 'done' frame: the host read it as one
        assert result.answer is not None


PIPE_DATA = st.one_of(st.binary(min_size=1, max_size=48), mutated_frames, messages.map(frame_of))


@fixed(25)
@given(PIPE_DATA, st.sampled_from(sorted(ENDINGS)))
def test_the_host_survives_whatever_a_worker_writes(
    escaped: SandboxExecutor, data: bytes, ending: str
) -> None:
    run_and_expect_a_typed_failure(escaped, data, ending)
    after = escaped.run("def execute_command(image):\n    return 'fine'\n", IMAGE, lambda t, a: 0)
    assert after.ok and after.answer == "fine", after


@pytest.mark.fuzz
@fresh(25)
@given(PIPE_DATA, st.sampled_from(sorted(ENDINGS)))
def test_the_host_survives_whatever_a_worker_writes_fuzz(
    escaped: SandboxExecutor, data: bytes, ending: str
) -> None:
    run_and_expect_a_typed_failure(escaped, data, ending)


def test_a_frame_header_claiming_the_largest_size_is_refused_before_reading(
    escaped: SandboxExecutor,
) -> None:
    header = struct.pack(">I", 2**32 - 1)
    result = escaped.run(writes(header, "hang"), IMAGE, lambda tool, args: "ok")
    assert result.error_kind == FailureReason.CRASHED and "exceeds" in (result.error or "")


def test_a_nan_box_is_refused_with_a_reason_and_infinities_clip(host: ProgramHost) -> None:
    """Found by the tool-call property: a NaN coordinate used to fail deep in the cropping
    ("cannot convert float NaN to integer"), a message that names no argument."""
    for box in ([0, 0, math.nan, 10], [math.nan] * 4):
        with pytest.raises(ValueError, match=r"box: .*NaN"):
            host("find", {"image": "ID", "box": box, "name": "spot"})
    hits = host("find", {"image": "ID", "box": [0, 0, math.inf, math.inf], "name": "spot"})
    assert [hit["box"] for hit in hits] == [[10.0, 20.0, 20.0, 30.0]]
