"""`vpagent serve` settles glibc's heap (arenas, large-buffer threshold), and says when it can't."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

import pytest

from vpagent.http import native_heap
from vpagent.http.native_heap import settle_native_heap

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_glibc_takes_every_setting() -> None:
    assert settle_native_heap() == {
        "mmap_threshold": native_heap.LARGE_BUFFER_BYTES,
        "trim_threshold": native_heap.LARGE_BUFFER_BYTES,
        "arena_max": native_heap.ARENAS,
    }


def test_another_c_library_is_left_alone_and_said_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class Musl:  # has mallopt's name nowhere, like musl
        pass

    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: "libc.so")
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: Musl())
    with caplog.at_level(logging.INFO, logger="vpagent.http.native_heap"):
        assert settle_native_heap() == {}
    assert "not glibc" in caplog.text


def test_a_refused_setting_is_logged_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class PickyGlibc:
        def gnu_get_libc_version(self) -> bytes:
            return b"2.36"

        def mallopt(self, parameter: ctypes.c_int, value: ctypes.c_int) -> int:
            return 0 if parameter.value == native_heap.M_ARENA_MAX else 1

    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: "libc.so.6")
    monkeypatch.setattr(ctypes, "CDLL", lambda _name: PickyGlibc())
    with caplog.at_level(logging.INFO, logger="vpagent.http.native_heap"):
        applied = settle_native_heap()
    assert "arena_max" not in applied and applied["mmap_threshold"] == 128 * 1024
    assert "mallopt refused arena_max" in caplog.text


def test_serve_settles_the_heap_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from vpagent.cli import app

    calls: list[str] = []
    monkeypatch.setattr(native_heap, "settle_native_heap", lambda: calls.append("settled"))

    def stop_before_models(_settings: object) -> None:
        raise SystemExit(0)

    monkeypatch.setattr("vpagent.cli.main.agent_or_fail", stop_before_models)
    runner = CliRunner()
    runner.invoke(app, ["serve"])
    assert calls == ["settled"]
    monkeypatch.setenv("VPAGENT_SERVER__TUNE_MALLOC", "false")
    runner.invoke(app, ["serve"])
    assert calls == ["settled"]
