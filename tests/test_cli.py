"""The command line, run as users run it: a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import vpagent
from tests.fixtures.sockets import SocketWatch


def vpagent_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vpagent", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_version() -> None:
    done = vpagent_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"vpagent {vpagent.__version__}"


def test_run_program_without_tools(tmp_path: Path, images_dir: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("def execute_command(image):\n    return image.width > image.height\n")
    done = vpagent_cli("run-program", str(program), str(images_dir / "truck.jpg"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "yes"


def test_run_program_json_and_trace_dir(tmp_path: Path, images_dir: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("def execute_command(image):\n    print('looking')\n    return 1 / 0\n")
    done = vpagent_cli(
        "run-program", str(program), str(images_dir / "bus.jpg"), "--json",
        "--trace-dir", str(tmp_path / "traces"),
    )  # fmt: skip
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["ok"] is False
    assert payload["error_kind"] == "runtime"
    assert "ZeroDivisionError" in payload["error"]
    assert payload["trace"]["error_line"] == 3
    assert payload["trace"]["stdout"] == "looking\n"
    assert Path(payload["trace_path"]).is_file() and Path(payload["trace_html"]).is_file()


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("import os\ndef execute_command(image):\n    return os.getcwd()\n", "rejected"),
        ("Here is the program you asked for.", "rejected"),
        ("def execute_command(image):\n    while True:\n        pass\n", "timeout"),
    ],
)
def test_run_program_reports_error_kinds(
    tmp_path: Path, images_dir: Path, source: str, kind: str
) -> None:
    program = tmp_path / "p.py"
    program.write_text(source)
    config = tmp_path / "vpagent.toml"
    config.write_text("[sandbox]\ncpu_seconds = 1\nwall_seconds = 5\n")
    done = vpagent_cli(
        "run-program", str(program), str(images_dir / "bus.jpg"), "--json", "-c", str(config)
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error_kind"] == kind


def test_bad_inputs_are_clear_errors_not_tracebacks(tmp_path: Path, images_dir: Path) -> None:
    program = tmp_path / "p.py"
    program.write_text("def execute_command(image):\n    return 1\n")
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((images_dir / "bus.jpg").read_bytes()[:3000])
    cases = [
        (["run-program", str(program), str(corrupt)], "corrupt or truncated"),
        (["run-program", str(program), str(tmp_path / "none.jpg")], "no image file"),
        (["run-program", str(tmp_path / "none.py"), str(corrupt)], "cannot read the program"),
    ]
    for args, message in cases:
        done = vpagent_cli(*args)
        assert done.returncode == 2, done
        assert message in done.stderr
        assert "Traceback" not in done.stderr
    bad_config = tmp_path / "bad.toml"
    bad_config.write_text("[sandbox]\ncpu_secs = 3\n")
    done = vpagent_cli(
        "run-program", str(program), str(images_dir / "bus.jpg"), "-c", str(bad_config)
    )
    assert done.returncode == 2 and "sandbox.cpu_secs" in done.stderr


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(("command", "path"), [("serve", "/healthz"), ("ui", "/")])
def test_servers_start_on_loopback(command: str, path: str, tmp_path: Path) -> None:
    """The server, and the embedded llama.cpp inside it, listen and connect on loopback only."""
    import os
    import time

    import httpx

    port = _free_port()
    env = {**os.environ, "VPAGENT_LLM__MODEL": "smollm2-135m", "VPAGENT_LLM__THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "vpagent", command, "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    try:
        with SocketWatch(process.pid) as watch:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            else:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"'vpagent {command}' did not serve: {output[-2000:]}")
        assert response.status_code == 200
        assert any(seen.laddr == ("127.0.0.1", port) for seen in watch.listening())
        assert not watch.off_loopback(), watch.report()
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_doctor_reports_stand_ins_and_missing_hub_models(tmp_path: Path) -> None:
    offline = json.loads(vpagent_cli("doctor", "--json", cwd=tmp_path).stdout)
    roles = {role["role"]: role for role in offline["roles"]}
    assert set(roles) == {
        "detector",
        "segmenter",
        "matcher",
        "captioner",
        "vqa",
        "ocr",
        "depth",
        "faces",
    }
    assert roles["detector"]["available"] and not roles["detector"]["stand_in"]
    assert roles["segmenter"]["stand_in"] and roles["depth"]["stand_in"]
    assert "no-new-privs" in offline["sandbox_isolation"]
    config = tmp_path / "hf.toml"
    config.write_text('profile = "hf"\n[tools.detector]\nmodel = "/no/such/owlv2"\n')
    hf = json.loads(vpagent_cli("doctor", "--json", "-c", str(config), cwd=tmp_path).stdout)
    roles = {role["role"]: role for role in hf["roles"]}
    assert not roles["detector"]["available"] and "/no/such/owlv2" in roles["detector"]["problem"]
    assert (
        not roles["matcher"]["available"]
        and "not in the local Hugging Face cache" in roles["matcher"]["problem"]
    )
