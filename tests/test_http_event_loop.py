"""CPU-heavy work stays off the server's event loop (issue 35, defect 4): decoding an upload and
rendering a trace run in threads, so `/healthz` and every other request's deadline and
disconnect checks keep their pace; a request refused with 429 never pays for the decode."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import vpagent.http.answering
import vpagent.http.app
from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.gated_agent import GatedAgent
from tests.fixtures.http_server import serving
from tests.test_http import _png
from vpagent.config import ServerConfig
from vpagent.http import create_app

SLOW_S = 1.5  # a 24 MP decode is ~0.4 s, an 8-step trace's render ~2.5 s on two cores
PNG = _png(spots_image())


class Slowed:
    """``function``, made to take ``SLOW_S`` longer (blocking its thread, like real CPU work);
    ``entered`` is set when a call starts, ``calls`` counts them."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.entered = threading.Event()
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        self.entered.set()
        time.sleep(SLOW_S)
        return self.function(*args, **kwargs)


def _ask(base: str, question: str, out: list[httpx.Response]) -> threading.Thread:
    files = {"image": ("spots.png", PNG, "image/png")}

    def post() -> None:
        out.append(httpx.post(f"{base}/v1/ask", files=files, data={"question": question},
                              timeout=30))  # fmt: skip

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _health_seconds(base: str) -> float:
    started = time.perf_counter()
    assert httpx.get(f"{base}/healthz", timeout=30).status_code == 200
    return time.perf_counter() - started


@pytest.fixture
def counting_agent() -> Iterator[Any]:
    agent = make_agent([COUNT])
    yield agent
    agent.close()


@pytest.mark.parametrize(("module", "name"), [(vpagent.http.answering, "load_image"),
                                              (vpagent.http.app, "render_html")])  # fmt: skip
def test_healthz_answers_while_an_upload_decodes_or_a_trace_renders(
    monkeypatch: pytest.MonkeyPatch, counting_agent: Any, module: Any, name: str
) -> None:
    slowed = Slowed(getattr(module, name))
    monkeypatch.setattr(module, name, slowed)
    with serving(create_app(counting_agent)) as base:
        answers: list[httpx.Response] = []
        asking = _ask(base, "How many spots?", answers)
        assert slowed.entered.wait(30)
        seconds = _health_seconds(base)
        asking.join(30)
    assert seconds < SLOW_S / 3, f"/healthz took {seconds:.2f} s behind {name}"
    assert answers[0].status_code == 200 and answers[0].json()["answer"] == "2"


def test_a_request_refused_with_429_is_not_decoded(monkeypatch: pytest.MonkeyPatch) -> None:
    slowed = Slowed(vpagent.http.answering.load_image)
    monkeypatch.setattr(vpagent.http.answering, "load_image", slowed)
    gated = GatedAgent()
    app = create_app(gated, config=ServerConfig(max_concurrent=1, max_queue=0))  # type: ignore[arg-type]
    with serving(app) as base:
        answers: list[httpx.Response] = []
        first = _ask(base, "first?", answers)
        deadline = time.monotonic() + 30
        while app.state.admission.running < 1:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        refused: list[httpx.Response] = []
        _ask(base, "second?", refused).join(30)
        gated.gate.set()
        first.join(30)
    gated.close()
    assert refused[0].status_code == 429 and answers[0].status_code == 200
    assert slowed.calls == 1  # only the question that was let in
