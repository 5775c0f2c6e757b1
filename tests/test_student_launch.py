"""`vpagent distill train` under torchrun: two CPU processes (gloo) train one student together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from student_tiny import build_export, build_tiny_lm

from distill.student.students import load_student
from tests.browser.driver import free_port


@pytest.mark.slow  # two Python processes import torch + transformers: ~30 s on 2 cores
def test_torchrun_with_two_cpu_processes_trains_one_student(
    tmp_path: Path, images_dir: Path
) -> None:
    export = build_export(tmp_path / "export", images_dir)
    language_model = build_tiny_lm(tmp_path / "lm")
    out = tmp_path / "ckpt"
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
