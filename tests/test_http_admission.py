"""The HTTP server under load: admission limits, single-flight, deadlines, clients that hang
up, metrics, and a graceful shutdown. A live uvicorn server with a gated agent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.fakes import spots_image
from tests.fixtures.gated_agent import GatedAgent
from tests.fixtures.http_server import serving
from tests.test_http import _png
from vpagent.config import ServerConfig
from vpagent.http import create_app

REPO = Path(__file__).parents[1]
PNG = _png(spots_image())


def _ask(base: str, question: str, timeout: float = 30) -> httpx.Response:
    files = {"image": ("spots.png", PNG, "image/png")}
    return httpx.post(f"{base}/v1/ask", files=files, data={"question": question}, timeout=timeout)


def _in_background(base: str, question: str, out: list[httpx.Response]) -> threading.Thread:
    thread = threading.Thread(target=lambda: out.append(_ask(base, question)), daemon=True)
    thread.start()
    return thread


def _until(condition, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def gated() -> Iterator[GatedAgent]:
    agent = GatedAgent()
    yield agent
    agent.close()


def test_full_server_says_429_with_retry_after_and_answers_the_rest(gated: GatedAgent) -> None:
    app = create_app(gated, config=ServerConfig(max_concurrent=1, max_queue=1))  # type: ignore[arg-type]
    admission = app.state.admission
    with serving(app) as base:
        answers: list[httpx.Response] = []
        first = _in_background(base, "first?", answers)
        _until(lambda: admission.running == 1)
        second = _in_background(base, "second?", answers)
        _until(lambda: admission.waiting == 1)
        refused = _ask(base, "third?")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "busy" in refused.json()["detail"]
        gated.gate.set()
        first.join(10), second.join(10)
        assert sorted(r.json()["answer"] for r in answers) == [
            "answer to first?",
            "answer to second?",
        ]
        text = httpx.get(f"{base}/metrics").text
    assert 'vpagent_refused_total{reason="queue_full"} 1.0' in text
    assert 'vpagent_http_requests_total{route="/v1/ask",status="429"} 1.0' in text
    assert 'vpagent_http_requests_total{route="/v1/ask",status="200"} 2.0' in text
    assert "vpagent_queue_depth 0.0" in text and "vpagent_plan_seconds_count 2.0" in text


def test_identical_requests_in_flight_share_one_computation(gated: GatedAgent) -> None:
    app = create_app(gated, config=ServerConfig(max_concurrent=1, max_queue=0))  # type: ignore[arg-type]
    with serving(app) as base:
        answers: list[httpx.Response] = []
        threads = [_in_background(base, "same?", answers) for _ in range(4)]
        _until(lambda: gated.asked == 1)
        time.sleep(0.3)  # the other three arrive while the first is in flight
        gated.gate.set()
        for thread in threads:
            thread.join(10)
        metrics = httpx.get(f"{base}/metrics").text
    assert [r.status_code for r in answers] == [200] * 4  # max_queue 0: no place, yet no 429
    assert {r.json()["answer"] for r in answers} == {"answer to same?"}
    assert gated.asked == 1 and "vpagent_single_flight_hits_total 3.0" in metrics


def test_past_its_deadline_a_request_gets_504_and_the_work_stops(gated: GatedAgent) -> None:
    config = ServerConfig(max_concurrent=1, request_timeout_s=0.6)
    app = create_app(gated, config=config)  # type: ignore[arg-type]
    with serving(app) as base:
        late = _ask(base, "slow?")
        assert late.status_code == 504
        assert "within 0.6 s" in late.json()["detail"] and "tokens written" in late.json()["detail"]
        _until(lambda: gated.cancelled == 1 and app.state.admission.running == 0)
        gated.gate.set()
        assert _ask(base, "next?").json()["answer"] == "answer to next?"  # its place is free


def test_a_client_that_hangs_up_frees_its_place(gated: GatedAgent) -> None:
    app = create_app(gated, config=ServerConfig(max_concurrent=1))  # type: ignore[arg-type]
    with serving(app) as base:
        with pytest.raises(httpx.ReadTimeout):
            _ask(base, "gone?", timeout=0.5)
        _until(lambda: gated.cancelled == 1 and app.state.admission.running == 0)
        assert gated.finished == 0
        metrics = httpx.get(f"{base}/metrics").text
    assert 'vpagent_refused_total{reason="client_closed"} 1.0' in metrics


def test_bad_input_is_refused_before_it_takes_a_place(gated: GatedAgent) -> None:
    app = create_app(gated, config=ServerConfig(max_concurrent=1))  # type: ignore[arg-type]
    with serving(app) as base:
        files = {"image": ("x.png", b"not an image", "image/png")}
        bad = httpx.post(f"{base}/v1/ask", files=files, data={"question": "what?"})
        assert bad.status_code == 422 and gated.asked == 0


DRAINING_SERVER = """
import sys
from tests.fixtures.gated_agent import GatedAgent
from vpagent.config import ServerConfig
from vpagent.http import create_app
from vpagent.http.server import run_server
port, timeout_s, answer_after_s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
app = create_app(GatedAgent(open_after_s=answer_after_s),
                 config=ServerConfig(request_timeout_s=timeout_s))
run_server(app, "127.0.0.1", port, request_timeout_s=timeout_s)
"""


@pytest.mark.parametrize(
    ("timeout_s", "answer_after_s", "status"),
    [
        (30, 1.5, 200),  # answered well within its deadline
        (1.9, 1.6, 200),  # answered just before its deadline, after SIGTERM + int(1.9) s
        (0.9, 30, 504),  # never answered: its 504 at the deadline, not a cut connection
    ],
)
def test_sigterm_answers_the_question_in_flight_then_exits(
    timeout_s: float, answer_after_s: float, status: int
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    server = subprocess.Popen(
        [sys.executable, "-c", DRAINING_SERVER, str(port), str(timeout_s), str(answer_after_s)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _until(lambda: _healthy(base), seconds=60)
        answers: list[httpx.Response | Exception] = []
        in_flight = threading.Thread(target=_ask_or_error, args=(base, answers), daemon=True)
        in_flight.start()
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        in_flight.join(60)
        code = server.wait(timeout=60)
        log = server.stdout.read() if server.stdout else ""
    finally:
        server.kill()
    assert code in (0, -signal.SIGTERM), log  # uvicorn re-raises the signal once drained
    assert "Finished server process" in log
    (answer,) = answers
    assert isinstance(answer, httpx.Response), f"the request was cut: {answer!r}\n{log}"
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json()["answer"] == "answer to finish me?"
    else:
        assert f"within {timeout_s:g} s" in answer.json()["detail"]


def _ask_or_error(base: str, out: list[httpx.Response | Exception]) -> None:
    try:
        out.append(_ask(base, "finish me?"))
    except httpx.HTTPError as error:
        out.append(error)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_draining_server_says_503_with_retry_after(gated: GatedAgent) -> None:
    app = create_app(gated, config=ServerConfig(max_concurrent=1))  # type: ignore[arg-type]
    with serving(app) as base:
        app.state.admission.draining = True  # what SIGTERM sets (vpagent/http/server.py)
        refused = _ask(base, "late?")
        health = httpx.get(f"{base}/healthz").json()
    assert refused.status_code == 503 and "shutting down" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) >= 1 and gated.asked == 0
    assert health["status"] == "draining"
