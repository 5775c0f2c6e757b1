"""`vpagent distill train` as a separate process: under torchrun with two CPU processes (gloo),
and killed with SIGKILL mid-run, then resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from student_tiny import build_export, build_tiny_lm

from distill.student.students import STUDENT_FILE, load_student
from distill.student.train import last_complete_checkpoint
from tests.browser.driver import free_port


@pytest.fixture
def parts(tmp_path: Path, images_dir: Path) -> tuple[Path, Path, Path]:
    """(export, tiny language model, output folder) of one training run."""
    return (
        build_export(tmp_path / "export", images_dir),
        build_tiny_lm(tmp_path / "lm"),
        tmp_path / "ckpt",
    )


@pytest.mark.slow  # two Python processes import torch + transformers: ~30 s on 2 cores
def test_torchrun_with_two_cpu_processes_trains_one_student(parts: tuple[Path, Path, Path]) -> None:
    export, language_model, out = parts
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(free_port()),
        "--local-addr", "127.0.0.1",
        "-m", "vpagent", "distill", "train", "--data", str(export), "--out", str(out),
        "--student", str(language_model), "--max-steps", "2", "--batch-size", "2",
        "--save-steps", "1", "--full", "--lr", "5e-3", "--device", "cpu",
    ]  # fmt: skip
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("trained 2 steps in 2 processes on 8 records") == 1, done.stdout

    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["steps"] == 2
    state = json.loads((out / "checkpoints" / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["epoch"] == 1.0  # 2 steps x 2 records x 2 processes = the 8 records once
    assert (out / "checkpoints" / "checkpoint-2" / ".complete").is_file()
    assert load_student(out).kind == "embedded"  # one finished student, written by rank 0


@pytest.mark.slow  # a training process is started, killed and resumed: ~20 s
def test_a_run_killed_with_sigkill_resumes_from_its_last_whole_checkpoint(
    parts: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    export, language_model, out = parts
    checkpoints = out / "checkpoints"

    def command(max_steps: int, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "vpagent", "distill", "train", "--data", str(export),
            "--out", str(out), "--student", str(language_model), "--max-steps", str(max_steps),
            "--batch-size", "1", "--save-steps", "2", "--full", "--device", "cpu", *extra,
        ]  # fmt: skip

    def newest_step() -> int:
        found = last_complete_checkpoint(checkpoints)
        return int(found.name.removeprefix("checkpoint-")) if found else 0

    log = tmp_path / "killed.log"
    with log.open("wb") as sink:
        run = subprocess.Popen(command(100_000), stdout=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 300
    while newest_step() < 4:  # two whole checkpoints, maybe a third being written
        assert run.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "no second checkpoint within 300 s"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    assert run.returncode == -signal.SIGKILL
    assert not (out / STUDENT_FILE).exists()  # killed: no student, whatever was on disk

    step = newest_step()
    done = subprocess.run(
        command(step + 2, "--resume"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resumed from step {step}" in " ".join(done.stdout.split())
    metrics = json.loads((out / "train_metrics.json").read_text())
    assert metrics["resumed_from"] == step and metrics["steps"] == step + 2
    assert all((path / ".complete").is_file() for path in checkpoints.glob("checkpoint-*"))
    assert load_student(out).kind == "embedded"
