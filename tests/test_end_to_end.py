"""`vpagent ask` with the real embedded LLM and the offline pack, as a user runs it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

LOOPBACK = ("127.", "'localhost'", "::1", "'127.")

pytestmark = pytest.mark.slow


def test_ask_counts_dogs_and_stays_on_loopback(images_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "net.jsonl"
    done = subprocess.run(
        [
            sys.executable, str(Path(__file__).parent / "fixtures" / "netwatch.py"), str(log),
            "ask", str(images_dir / "two_dogs.jpg"), "How many dogs are there?", "--json",
            "--trace-dir", str(tmp_path / "traces"),
        ],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    payload = json.loads(done.stdout)
    assert set(payload) >= {"answer", "program", "trace", "timings", "error"}
    assert payload["answer"] == "2", payload
    ast.parse(payload["program"])
    assert payload["trace"]["steps"], "the program called no tool"
    assert payload["timings"]["plan_s"] > 0 and Path(payload["trace_html"]).is_file()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    outside = [e for e in events if not any(mark in e["address"] for mark in LOOPBACK)]
    assert not outside, f"connections or lookups beyond loopback: {outside}"
    assert any(e["event"] == "socket.connect" for e in events)  # the watch really watched
