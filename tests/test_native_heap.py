"""`vpagent serve` settles glibc's heap (arenas, large-buffer threshold), and says when it can't."""

from __future__ import annotations

import ctypes
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Callable

import pytest

from vpagent.http import native_heap
from vpagent.http.native_heap import settle_native_heap

GLIBC = platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_glibc_takes_every_setting() -> None:
    """In a process of its own, so the rest of the suite keeps glibc's defaults."""
    script = (
        "import json; from vpagent.http.native_heap import settle_native_heap; "
        "print(json.dumps(settle_native_heap()))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == {
        "mmap_threshold": native_heap.LARGE_BUFFER_BYTES,
        "trim_threshold": native_heap.LARGE_BUFFER_BYTES,
        "arena_max": native_heap.ARENAS,
    }


class Musl:  # no glibc symbols, like musl
    pass


def refuse(_name: object) -> None:
    raise OSError("no such library")


@pytest.mark.parametrize(
    ("open_library", "said"),
    [(lambda _name: Musl(), "not glibc"), (refuse, "cannot open the C library")],
    ids=["another C library", "cannot be opened"],
)
def test_a_c_library_that_is_not_glibc_is_left_alone_and_said_so(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    open_library: Callable[[object], object],
    said: str,
) -> None:
    monkeypatch.setattr(ctypes, "CDLL", open_library)
    with caplog.at_level(logging.INFO, logger="vpagent.http.native_heap"):
        assert settle_native_heap() == {}
    assert said in caplog.text


def test_a_refused_setting_is_logged_and_left_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class PickyGlibc:
        def gnu_get_libc_version(self) -> bytes:
            return b"2.36"

        def mallopt(self, parameter: ctypes.c_int, value: ctypes.c_int) -> int:
            return 0 if parameter.value == native_heap.M_ARENA_MAX else 1

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
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert calls == ["settled"]
    monkeypatch.setenv("VPAGENT_SERVER__TUNE_MALLOC", "false")
    assert runner.invoke(app, ["serve"]).exit_code == 0
    assert calls == ["settled"]
