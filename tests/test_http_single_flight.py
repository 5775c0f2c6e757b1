"""Single-flight under cancellation: a computation every client left is never joined, and its
place stays taken until its worker thread has really stopped (issue 35, defects 1 and 2).

A scripted agent whose steps are slow, so a cancellation lands long after it is asked for.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from tests.fixtures.fakes import spots_image
from vpagent.events import EventCallback, Planning, TokensWritten, ignore
from vpagent.http.admission import Admission
from vpagent.http.answering import Answerer, DeadlineExceeded, Question
from vpagent.http.metrics import ServerMetrics
from vpagent.result import Result

STEP_S = 1.5  # one step of the slow agent: the window in which a cancelled thread still runs


class SlowStepAgent:
    """Answers after one slow step; counts the questions its threads are running now."""

    student = None
    parallel = 1

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.running = self.most_running = self.asked = 0

    def ask(
        self, image: Any, question: str, *, on_event: EventCallback | None = None,
        mode: str | None = None, **_given: Any,  # choices, marks: as Agent.ask takes them
    ) -> Result:  # fmt: skip
        notify = on_event or ignore
        with self._lock:
            self.asked += 1
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            notify(Planning(0))
            time.sleep(STEP_S)
            notify(TokensWritten(1))  # where a cancellation lands
            return Result(question=question, answer=f"answer to {question}")
        finally:
            with self._lock:
                self.running -= 1


def _answerer(agent: SlowStepAgent, timeout_s: float) -> Answerer:
    admission = Admission(max_concurrent=1, max_queue=4)
    metrics = ServerMetrics(lambda: admission.waiting, lambda: admission.running, dict)
    return Answerer(agent, admission, metrics, timeout_s)  # type: ignore[arg-type]


def _question(text: str) -> Question:
    return Question(spots_image(), "same-image", text)


async def _connected() -> bool:
    return False


async def _until(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def test_a_retry_after_a_timeout_gets_an_answer_not_the_cancelled_computation() -> None:
    agent = SlowStepAgent()
    answerer = _answerer(agent, timeout_s=0.3)

    async def scenario() -> Result:
        with pytest.raises(DeadlineExceeded):
            await answerer.answer(_question("same?"), _connected)
        assert agent.running == 1  # cancelled, but its thread is still in its slow step
        answerer.timeout_s = 10
        return await answerer.answer(_question("same?"), _connected)  # the client retries

    result = asyncio.run(scenario())
    answerer.close()
    assert result.answer == "answer to same?"
    assert agent.asked == 2 and agent.most_running == 1  # a fresh computation, after the old


def test_a_second_cancel_keeps_the_place_until_the_thread_has_stopped() -> None:
    agent = SlowStepAgent()
    answerer = _answerer(agent, timeout_s=10)
    admission = answerer.admission

    async def scenario() -> list[tuple[int, int]]:
        request = asyncio.create_task(answerer.answer(_question("slow?"), _connected))
        await _until(lambda: agent.running == 1)
        (flight,) = answerer._flights.values()
        assert flight.task is not None
        request.cancel()  # the last client leaves: the computation is cancelled
        await asyncio.sleep(0.05)
        flight.task.cancel()  # and cancelled again while its thread still runs
        seen = []
        while agent.running:
            seen.append((agent.running, admission.running))
            await asyncio.sleep(0.05)
        await _until(lambda: flight.task is not None and flight.task.done())
        return seen

    seen = asyncio.run(scenario())
    answerer.close()
    assert seen and all(held == 1 for _, held in seen), "the place was freed too early"
    assert admission.running == 0  # and freed once the thread stopped
