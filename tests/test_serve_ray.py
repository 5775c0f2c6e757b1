"""`vpagent serve --ray`: agent replicas on Ray Serve, on a loopback-only private Ray."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.fakes import spots_image
from tests.fixtures.gated_agent import replica_agent
from tests.test_http import _png
from vpagent.config import ServerConfig

pytest.importorskip("ray.serve")

PNG = _png(spots_image())


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    from vpagent.http.on_ray import deploy, shutdown
    from vpagent.ray_cluster import stop_ray

    config = ServerConfig(max_concurrent=1, max_queue=2, request_timeout_s=60)  # 3 per replica
    try:
        yield _deploy_on_a_free_port(deploy, shutdown, config)
    finally:
        shutdown()
        stop_ray()


def _deploy_on_a_free_port(
    deploy: Callable[..., str], shutdown: Callable[[], None], config: ServerConfig, tries: int = 3
) -> str:
    """Deploy on a port that was free a moment ago; the private Ray's own processes start in
    between and can take it first ("Failed to bind"), so another port is tried."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        try:
            return deploy(replica_agent, api_key=None, config=config, parallel=1, replicas=2,
                          host="127.0.0.1", port=port)  # fmt: skip
        except Exception as error:  # Ray wraps the proxy's RuntimeError in a RayTaskError
            tries -= 1
            if "Failed to bind" not in str(error) or tries == 0:
                raise
            shutdown()


def test_a_replica_takes_llm_parallel_questions_when_max_concurrent_is_unset() -> None:
    from vpagent.http.on_ray import replica_requests

    unset = ServerConfig(max_concurrent=None, max_queue=2)
    assert replica_requests(unset, parallel=4) == (4 + 2, 2)  # as the replica's admission
    assert replica_requests(ServerConfig(max_concurrent=1, max_queue=0), parallel=4) == (1, 1)


def _ask(base: str, question: str) -> httpx.Response:
    files = {"image": ("spots.png", PNG, "image/png")}
    return httpx.post(f"{base}/v1/ask", files=files, data={"question": question}, timeout=90)


def _ask_as_a_client_would(base: str, question: str, tries: int = 20) -> httpx.Response:
    """Ask; on 429/503 (a full replica, or Serve's full queue) wait and ask again."""
    for _ in range(tries):
        response = _ask(base, question)
        if response.status_code not in (429, 503):
            return response
        time.sleep(float(response.headers.get("Retry-After", "0.5")))
    return response


@pytest.mark.slow  # Ray, Serve's controller and proxy, two replicas: ~40 s idle
def test_two_replicas_share_the_load_and_a_dead_one_is_replaced(served: str) -> None:
    from ray import serve

    from vpagent.loopback import is_loopback
    from vpagent.ray_cluster import ray_listening_addresses

    answers: list[httpx.Response] = []

    def client(number: int) -> None:
        answers.append(_ask_as_a_client_would(served, f"q{number}?"))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert [r.status_code for r in answers] == [200] * 6
    processes = {r.json()["answer"].rsplit(" from ", 1)[1] for r in answers}
    assert len(processes) == 2, "both replicas answered"

    crashed = _ask(served, "crash now?")  # the replica's process dies mid-answer
    assert crashed.status_code >= 500
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = serve.status().applications["vpagent"].deployments["agent"]
        if status.replica_states.get("RUNNING") == 2:
            break
        time.sleep(1)
    assert serve.status().applications["vpagent"].deployments["agent"].replica_states == {
        "RUNNING": 2
    }
    assert _ask(served, "after?").status_code == 200
    listening = ray_listening_addresses()  # Ray, Serve's proxy and the replicas
    assert any(port == int(served.rsplit(":", 1)[1]) for _, _, port in listening)
    outside = [entry for entry in listening if not is_loopback(entry[1])]
    assert not outside, outside


@pytest.mark.heavy  # `vpagent serve --ray` with the SmolLM2 planner: Ray, Serve, one replica
def test_cli_serves_on_ray_and_stops_on_sigterm(tmp_path: Path, data_dir: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "VPAGENT_LLM__MODEL": "smollm2-135m", "VPAGENT_LLM__THREADS": "1",
           "VPAGENT_LLM__MAX_TOKENS": "48", "VPAGENT_AGENT__MAX_REPAIRS": "0"}  # fmt: skip
    command = [sys.executable, "-m", "vpagent", "serve", "--ray", "--replicas", "1",
               "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        image = (data_dir / "images" / "two_dogs.jpg").read_bytes()
        files = {"image": ("dogs.jpg", image, "image/jpeg")}
        answer = httpx.post(f"{base}/v1/ask", files=files, data={"question": "How many dogs?"},
                            timeout=300)  # fmt: skip
        assert answer.status_code == 200 and answer.json()["answer"] is not None
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=120) == 0
    finally:
        server.kill()
        output = server.stdout.read() if server.stdout else ""
    assert f"serving on {base}" in output, output[-2000:]
