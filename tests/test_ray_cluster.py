"""vpagent's own Ray is reachable from loopback only and needs its token; clusters are explicit.

The socket checks watch every Ray process (GCS, raylet, workers, agents are separate programs
that a guard inside the test process cannot see) with psutil while work runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.fixtures.sockets import SocketWatch
from vpagent import ray_cluster
from vpagent.loopback import is_loopback
from vpagent.ray_cluster import RayStartError, start_ray, stop_ray

ray = pytest.importorskip("ray")


@pytest.fixture
def private_ray() -> Iterator[SocketWatch]:
    """The project's local Ray as the CLI starts it, its whole process tree watched."""
    with SocketWatch() as watch:
        start_ray(num_cpus=2)
        try:
            yield watch
        finally:
            stop_ray()


@pytest.mark.slow  # starts Ray (~5 s) and a ray.data actor pool
def test_private_ray_listens_and_talks_on_loopback_only(private_ray: SocketWatch) -> None:
    @ray.remote
    def double(x: int) -> int:
        return 2 * x

    assert ray.get([double.remote(i) for i in range(4)]) == [0, 2, 4, 6]
    doubled = ray.data.range(6).map_batches(
        lambda batch: {"id": batch["id"] * 2}, batch_size=2, concurrency=2
    )
    assert sorted(row["id"] for row in doubled.iter_rows()) == [0, 2, 4, 6, 8, 10]

    private_ray.poll()
    assert len(private_ray.pids) >= 4  # the driver, GCS, raylet and workers were all seen
    assert private_ray.listening(), private_ray.report()
    assert not private_ray.off_loopback(), private_ray.report()
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"


@pytest.mark.slow
def test_private_ray_refuses_a_client_without_its_token(private_ray: SocketWatch) -> None:
    gcs = ray.get_runtime_context().gcs_address
    assert gcs.startswith("127.0.0.1:")
    outsider = {key: value for key, value in os.environ.items() if not key.startswith("RAY_AUTH")}
    joined = subprocess.run(
        [sys.executable, "-c", f"import ray; ray.init(address={gcs!r}); print('joined')"],
        env={**outsider, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "not-the-token"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert joined.returncode != 0 and "joined" not in joined.stdout
    assert "token" in joined.stderr.lower()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("::ffff:127.0.0.1", True),
     ("0.0.0.0", False), ("::", False), ("192.0.2.2", False), ("::ffff:192.0.2.2", False),
     ("localhost", False), ("fe80::1%eth0", False)],
)  # fmt: skip
def test_loopback_means_this_machine_only(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_stop_restores_the_environment_a_private_ray_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")

    def fail_start(_ray: Any, _num_cpus: int | None) -> None:
        assert os.environ["RAY_AUTH_MODE"] == "token" and len(os.environ["RAY_AUTH_TOKEN"]) == 64
        assert os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0"
        raise RayStartError("stop here")

    monkeypatch.setattr(ray_cluster, "_start_local", fail_start)
    with pytest.raises(RayStartError, match="stop here"):
        start_ray()
    assert os.environ["RAY_AUTH_MODE"] == "disabled" and "RAY_AUTH_TOKEN" not in os.environ


def test_a_private_ray_found_listening_off_loopback_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    fake_ray = SimpleNamespace(
        init=lambda **_kwargs: calls.append("init"), shutdown=lambda: calls.append("shutdown")
    )
    monkeypatch.setattr(
        ray_cluster,
        "ray_listening_addresses",
        lambda: [("raylet", "127.0.0.1", 1000), ("gcs_server", "::", 6379)],
    )
    with pytest.raises(RayStartError, match=r"off loopback \(gcs_server on :::6379\)"):
        ray_cluster._start_local(fake_ray, 1)
    assert calls == ["init", "shutdown"]


def test_joining_a_cluster_without_authentication_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setattr(ray, "init", lambda **_kwargs: pytest.fail("must not connect"))
    with pytest.raises(RayStartError, match="RAY_AUTH_MODE=disabled"):
        start_ray("ray://10.20.30.40:10001")


def test_ray_address_joins_the_named_cluster_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`--ray-address` (or ray.address) reaches ray.init unchanged; no private Ray starts."""
    from typer.testing import CliRunner

    from tests.fixtures.agents import spots_png, write_dataset
    from vpagent.cli import app

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    joined: list[dict[str, Any]] = []

    def fake_init(**kwargs: Any) -> None:
        joined.append(kwargs)
        raise ConnectionError("no cluster in this test")

    monkeypatch.setattr(ray, "init", fake_init)
    spots_png(tmp_path / "1.png", 1)
    row = {"id": "a", "image": "1.png", "question": "How many spots?", "answer": "1"}
    dataset = write_dataset(tmp_path, [row])
    runner = CliRunner()
    command = ["distill", "traces", str(dataset), "--out", str(tmp_path / "t")]
    result = runner.invoke(app, [*command, "--ray-address", "ray://10.20.30.40:10001"])
    assert result.exit_code == 2 and "no cluster in this test" in result.output
    monkeypatch.setenv("VPAGENT_RAY__ADDRESS", "10.20.30.41:6379")
    result = runner.invoke(app, [*command, "--ray"])
    assert result.exit_code == 2
    assert [call["address"] for call in joined] == ["ray://10.20.30.40:10001", "10.20.30.41:6379"]
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER" not in os.environ


@pytest.mark.slow  # a real `vpagent distill traces --ray` run: Ray, an actor, the tiny planner
def test_distill_traces_on_ray_stays_on_loopback(tmp_path: Path, data_dir: Path) -> None:
    rows = [
        {"id": f"q{i}", "image": str(data_dir / "images" / name), "question": question,
         "answer": answer, "type": "count"}
        for i, (name, question, answer) in enumerate(
            [("two_dogs.jpg", "How many dogs are there?", "2"),
             ("two_dogs.jpg", "How many cats are there?", "0")]
        )
    ]  # fmt: skip
    dataset = tmp_path / "items.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    short = {"LLM__MODEL": "smollm2-135m", "LLM__THREADS": "1", "LLM__MAX_TOKENS": "48",
             "AGENT__MAX_FIXES": "0", "AGENT__MAX_REPAIRS": "0"}  # fmt: skip
    env = {**os.environ, **{f"VPAGENT_{key}": value for key, value in short.items()}}
    out = tmp_path / "traces"
    command = ["distill", "traces", str(dataset), "--out", str(out), "--k", "1", "--ray"]
    process = subprocess.Popen(
        [sys.executable, "-m", "vpagent", *command],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with SocketWatch(process.pid) as watch:
        output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    records = (out / "items.jsonl").read_text().splitlines()[1:]  # after the run header
    assert sorted(json.loads(line)["item_id"] for line in records) == ["q0", "q1"]  # traced
    assert len(watch.pids) >= 4 and watch.listening(), watch.report()
    assert not watch.off_loopback(), watch.report()
