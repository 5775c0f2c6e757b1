"""``vpagent distill train --nproc N``: N training processes on this machine, loopback only.

torchrun and ``accelerate launch`` rendezvous through a TCPStore whose server listens on every
interface (``::``) and look host names up (reverse DNS of 127.0.0.1, ``socket.getfqdn``). Here
nothing listens beyond loopback and no name is looked up:

- the launcher writes the options into a private temporary folder and starts N workers
  (``python -m vpagent.distill.student.launch FOLDER``) with ``RANK``/``LOCAL_RANK``/``WORLD_SIZE``;
- each worker joins the process group through a ``FileStore`` in that folder (``file://``
  rendezvous: no TCP store at all), gloo (CPU) on ``lo`` (``GLOO_SOCKET_IFNAME=lo``, else gloo
  resolves the host name), NCCL (GPU) bootstrapping on ``lo`` (``NCCL_SOCKET_IFNAME=lo``); the
  Trainer's accelerate state finds the group initialised and keeps it;
- rank 0 writes its :class:`TrainResult` into the folder for the launcher to report; a worker
  that fails stops the others and the launcher raises :class:`StudentError` naming it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vpagent.distill.student.data import load_split
from vpagent.distill.student.train import TrainOptions, TrainResult, check_out_dir, train
from vpagent.student.base import StudentError

OPTIONS_FILE = "options.json"
RESULT_FILE = "result.json"
STORE_FILE = "rendezvous"
STOP_SECONDS = 10.0


def worker_env(rank: int, nproc: int) -> dict[str, str]:
    """The environment of worker ``rank``: this one plus its rank and loopback-only settings."""
    env = {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(nproc),
        "LOCAL_WORLD_SIZE": str(nproc),
        "MASTER_ADDR": "127.0.0.1",  # for anything that reads it; no TCP store is started
        "GLOO_SOCKET_IFNAME": "lo",
        "NCCL_SOCKET_IFNAME": "lo",
    }
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return env


def launch(options: TrainOptions, nproc: int) -> TrainResult:
    """Train with ``nproc`` processes on this machine; rank 0's result."""
    if nproc < 1:
        raise StudentError(f"--nproc must be at least 1, not {nproc}")
    check_out_dir(options)  # bad input is one message from here, before any worker starts
    load_split(options.data, "train", options.tasks)
    with tempfile.TemporaryDirectory(prefix="vpagent-train-") as folder:
        work = Path(folder)
        (work / OPTIONS_FILE).write_text(options.model_dump_json(), encoding="utf-8")
        command = [sys.executable, "-m", __name__, str(work)]
        workers: list[subprocess.Popen[bytes]] = []
        try:
            for rank in range(nproc):
                workers.append(subprocess.Popen(command, env=worker_env(rank, nproc)))
            wait_all(workers, work)
        finally:
            stop(workers)
        return TrainResult.model_validate_json((work / RESULT_FILE).read_text(encoding="utf-8"))


def wait_all(workers: list[subprocess.Popen[bytes]], work: Path, poll: float = 0.1) -> None:
    """Return once every worker exited 0; on the first failure raise (the caller stops the rest)."""
    while True:
        codes = [worker.poll() for worker in workers]
        for rank, code in enumerate(codes):
            if code not in (None, 0):
                error = work / f"error-{rank}.txt"
                why = error.read_text(encoding="utf-8") if error.is_file() else "see its output"
                how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
                raise StudentError(
                    f"training process {rank} of {len(workers)} failed ({how}): {why}; "
                    "the other processes were stopped"
                )
        if all(code == 0 for code in codes):
            return
        time.sleep(poll)


def stop(workers: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the workers still running; kill those that outlive ``STOP_SECONDS``."""
    running = [worker for worker in workers if worker.poll() is None]
    for worker in running:
        worker.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for worker in running:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def join_group(store: Path, device: str) -> None:
    """Join the process group of ``WORLD_SIZE`` workers through the file ``store``."""
    import torch
    import torch.distributed as dist

    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:  # the backend and device accelerate would pick under torchrun
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        init_method=f"file://{store}",
        rank=rank,
        world_size=world_size,
    )


def worker(work: Path) -> int:
    """One training process: join the group, train, rank 0 writes the result; the exit code."""
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    options = TrainOptions.model_validate_json((work / OPTIONS_FILE).read_text(encoding="utf-8"))
    try:
        join_group(work / STORE_FILE, options.device)
        result = train(options)
    except (StudentError, OSError) as error:
        (work / f"error-{rank}.txt").write_text(str(error), encoding="utf-8")
        return 1
    if rank == 0:
        (work / RESULT_FILE).write_text(result.model_dump_json(), encoding="utf-8")
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":  # `python -m vpagent.distill.student.launch`: offline env applied
    sys.exit(worker(Path(sys.argv[1])))
