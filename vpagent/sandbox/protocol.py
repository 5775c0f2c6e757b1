"""Length-prefixed msgpack frames: the only thing that crosses the sandbox boundary.

Messages are plain data (None, bool, int, float, str, bytes, lists, string-keyed maps).
Nothing is pickled and no live object crosses, so a hostile worker can at worst send
malformed data, which the host validates.
"""

from __future__ import annotations

import os
import select
import struct
import time
from typing import Any

import msgpack

from vpagent.sandbox.limits import MAX_FRAME_BYTES

_HEADER = struct.Struct(">I")


class ProtocolError(RuntimeError):
    """The peer sent something that is not a valid frame, or closed the pipe."""


class PeerClosed(ProtocolError):
    """The peer closed its end of the pipe (it exited, or was killed)."""


class DeadlineExceeded(TimeoutError):
    """The peer did not answer before the deadline."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame: a 4-byte big-endian length, then the msgpack payload."""
    payload: bytes = msgpack.packb(message, use_bin_type=True)  # msgpack is untyped
    if len(payload) > MAX_FRAME_BYTES:
        raise ProtocolError(f"message of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> dict[str, Any]:
    """The message in one payload; anything but a map with a string 'op' is refused."""
    try:
        message = msgpack.unpackb(payload, raw=False, strict_map_key=True)
    except Exception as error:  # msgpack raises several unrelated exception types
        raise ProtocolError(f"undecodable frame: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("op"), str):
        raise ProtocolError("frame is not a message with an 'op'")
    return message


# Blocking I/O, used inside the worker.


def _read_exact(fd: int, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = os.read(fd, size - len(chunks))
        if not chunk:
            raise PeerClosed("pipe closed")
        chunks += chunk
    return bytes(chunks)


def read_frame(fd: int) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    if size > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
    return decode(_read_exact(fd, size))


def write_all(fd: int, frame: bytes) -> None:
    """Write an encoded frame to a blocking pipe."""
    data = memoryview(frame)
    while data:
        written = os.write(fd, data)
        data = data[written:]


def write_frame(fd: int, message: dict[str, Any]) -> None:
    write_all(fd, encode(message))


# Deadline-bounded I/O, used by the host so a stuck or hostile worker cannot block it.


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded
    return left


def _read_exact_until(fd: int, size: int, deadline: float) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        try:
            chunk = os.read(fd, size - len(chunks))
        except BlockingIOError:  # nothing there yet: wait for it
            readable, _, _ = select.select([fd], [], [], _remaining(deadline))
            if not readable:
                raise DeadlineExceeded from None
            continue
        if not chunk:
            raise PeerClosed("pipe closed")
        chunks += chunk
    return bytes(chunks)


def read_frame_until(fd: int, deadline: float, max_bytes: int = MAX_FRAME_BYTES) -> dict[str, Any]:
    """Read one frame from a non-blocking pipe, giving up at ``deadline`` (monotonic clock).

    A frame longer than ``max_bytes`` is refused before it is read. A passed deadline is
    exceeded even when the frame is already waiting in the pipe: a worker that keeps the host
    busy with quick tool calls, or a slow tool, cannot stretch the run past its limit.
    """
    _remaining(deadline)
    (size,) = _HEADER.unpack(_read_exact_until(fd, _HEADER.size, deadline))
    if size > max_bytes:
        raise ProtocolError(f"frame of {size} bytes exceeds {max_bytes}")
    return decode(_read_exact_until(fd, size, deadline))


def write_all_until(fd: int, frame: bytes, deadline: float) -> None:
    """Write an encoded frame to a non-blocking pipe, giving up at ``deadline``."""
    _remaining(deadline)
    data = memoryview(frame)
    while data:
        try:
            written = os.write(fd, data)
        except BlockingIOError:  # the pipe is full: wait until the peer reads
            _, writable, _ = select.select([], [fd], [], _remaining(deadline))
            if not writable:
                raise DeadlineExceeded from None
            continue
        data = data[written:]


def write_frame_until(fd: int, message: dict[str, Any], deadline: float) -> None:
    """Write one message to a non-blocking pipe, giving up at ``deadline``."""
    write_all_until(fd, encode(message), deadline)
