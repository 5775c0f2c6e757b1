"""Answering HTTP questions: admission, single-flight, deadlines and clients that hang up.

Identical questions in flight (same image bytes, question and mode) share one computation:
the first takes a place (:mod:`vpagent.http.admission`), later ones wait for its result. Each
request waits until its deadline; a request whose client disconnects, or whose deadline
passes, stops waiting at once, and when no request waits any more the computation is
cancelled and leaves the flight table at once (a retry starts afresh, it never joins a
cancelled computation): the question stops at its next step
(:class:`vpagent.events.Cancelled`), and only then frees its place.

CPU-heavy work stays off the event loop: hashing and decoding an upload (after the admission
check, so a refused request does not pay for it), the agent, and ``on_answer`` (rendering the
trace, once per computation) run in threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from vpagent.agent import Agent
from vpagent.events import Cancelled, Event
from vpagent.http.admission import Admission
from vpagent.http.metrics import ServerMetrics
from vpagent.images import load_image
from vpagent.logs import log_context
from vpagent.result import Result, validate_choices, validate_question
from vpagent.tools.types import GivenMark, Mark

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often a waiting request checks its client and its deadline


class DeadlineExceeded(Exception):
    """No answer within the request's deadline; ``stage`` is how far the question got."""

    def __init__(self, seconds: float, stage: str) -> None:
        super().__init__(f"no answer within {seconds:g} s; the question was at: {stage}")
        self.stage = stage


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


@dataclass(frozen=True, eq=False)
class Question:
    """What a request asks: the picture (decoded once), the question, who answers."""

    pixels: np.ndarray
    digest: str  # sha256 of the image file: identical requests share a computation
    text: str
    mode: str | None = None
    choices: tuple[str, ...] = ()  # a multiple-choice question's options
    marks: tuple[Mark, ...] = ()  # marks given with the question
    deadline_s: float | None = None  # this request's time budget (default: agent.deadline_s)

    def key(self) -> str:
        return _key(self.digest, self.mode, self.text, self.choices, self.marks, self.deadline_s)


def _key(
    digest: str,
    mode: str | None,
    text: str,
    choices: tuple[str, ...] = (),
    marks: tuple[Mark, ...] = (),
    deadline_s: float | None = None,
) -> str:
    given = [mark.model_dump(mode="json") for mark in marks]
    return f"{digest}:{mode}:{text}:{json.dumps(choices)}:{json.dumps(given)}:{deadline_s}"


@dataclass
class Flight:
    """One computation and the requests waiting for it."""

    key: str
    task: asyncio.Task[Result] | None = None
    waiters: int = 0
    stage: str = "queued"
    cancel: threading.Event = field(default_factory=threading.Event)
    listeners: list[asyncio.Queue[Event]] = field(default_factory=list)


Disconnected = Callable[[], Awaitable[bool]]
OnAnswer = Callable[[Result, np.ndarray], None]


class Answerer:
    """Turns requests into agent answers under the server's limits.

    ``on_answer(result, pixels)`` runs in the worker thread once per computation, before its
    requests get the result (the server stores and renders the trace there).
    """

    def __init__(
        self,
        agent: Agent,
        admission: Admission,
        metrics: ServerMetrics,
        timeout_s: float,
        on_answer: OnAnswer | None = None,
    ) -> None:
        self.agent = agent
        self.admission = admission
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.on_answer = on_answer
        self._threads = ThreadPoolExecutor(admission.max_concurrent, "vpagent-answer")
        self._flights: dict[str, Flight] = {}

    async def read(
        self,
        image: bytes,
        text: str,
        mode: str | None = None,
        choices: list[str] | None = None,
        *,
        marks: list[GivenMark] | None = None,
        deadline_s: float | None = None,
    ) -> Question:
        """The checked question, its image decoded in a thread; ValueError (ImageError) for an
        empty question or a bad image, :class:`Refused` for a new question the server cannot
        take now (before the decode is paid for). ``deadline_s``: the question's time budget
        (Agent.ask's; the request still ends at ``timeout_s``), ValueError unless above 0."""
        checked = validate_question(text)
        if deadline_s is not None and not deadline_s > 0:  # NaN too
            raise ValueError("deadline_s must be a number of seconds above 0")
        options = tuple(validate_choices(choices) or ())
        given = tuple(mark.mark() for mark in marks or [])
        digest = await asyncio.to_thread(lambda: hashlib.sha256(image).hexdigest())
        if _key(digest, mode, checked, options, given, deadline_s) not in self._flights:
            self.admission.check()
        pixels = await asyncio.to_thread(load_image, image)
        return Question(pixels, digest, checked, mode, options, given, deadline_s)

    async def answer(
        self,
        question: Question,
        disconnected: Disconnected,
        listener: asyncio.Queue[Event] | None = None,
    ) -> Result:
        """The agent's Result; raises Refused, DeadlineExceeded, ClientGone or ValueError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        flight = self._flights.get(question.key())
        if flight is None:
            self.admission.check()  # refuse before any work is set up
            flight = Flight(question.key())
            flight.task = asyncio.create_task(self._compute(flight, question))
            self._flights[flight.key] = flight
        else:
            self.metrics.single_flight_hits.inc()
        flight.waiters += 1
        if listener is not None:
            flight.listeners.append(listener)
        try:
            return await self._wait(flight, deadline, disconnected)
        finally:
            flight.waiters -= 1
            if listener is not None:
                flight.listeners.remove(listener)
            if flight.waiters == 0 and flight.task is not None and not flight.task.done():
                self._abandon(flight)

    def _abandon(self, flight: Flight) -> None:
        """Nobody waits for ``flight`` any more: cancel it, and take it off the table now, so
        an identical request starts a computation of its own instead of joining this one."""
        assert flight.task is not None
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
        flight.cancel.set()
        flight.task.cancel()

    async def _wait(self, flight: Flight, deadline: float, disconnected: Disconnected) -> Result:
        assert flight.task is not None
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(asyncio.shield(flight.task))
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=POLL_SECONDS)
                if done:
                    return waiting.result()
                if await disconnected():
                    raise ClientGone
                if loop.time() >= deadline:
                    raise DeadlineExceeded(self.timeout_s, flight.stage)
        finally:
            waiting.cancel()

    async def _compute(self, flight: Flight, question: Question) -> Result:
        loop = asyncio.get_running_loop()
        try:
            async with self.admission.place():
                flight.stage = "started"
                running = loop.run_in_executor(self._threads, self._ask, flight, question, loop)
                try:
                    result = await asyncio.shield(running)
                except asyncio.CancelledError:
                    flight.cancel.set()  # the thread stops at its next step
                    await _outlast(running)  # the place stays taken until it has
                    raise
        finally:
            if self._flights.get(flight.key) is flight:
                del self._flights[flight.key]
        self.metrics.observe(result)
        return result

    def _ask(self, flight: Flight, question: Question, loop: asyncio.AbstractEventLoop) -> Result:
        """In a worker thread: the agent's answer, with progress sent to the listeners."""

        def notify(event: Event) -> None:
            if flight.cancel.is_set():
                raise Cancelled
            flight.stage = str(event)
            for listener in list(flight.listeners):
                loop.call_soon_threadsafe(listener.put_nowait, event)

        if flight.cancel.is_set():
            raise Cancelled
        with log_context(request_id=secrets.token_hex(6)):  # on every record of this answer
            log.info("answering %r", question.text[:200])
            result = self.agent.ask(
                question.pixels,
                question.text,
                choices=list(question.choices) or None,
                marks=list(question.marks),
                on_event=notify,
                mode=question.mode,
                deadline_s=question.deadline_s,
            )
            log.info(
                "answered %r (%s) after %d attempts",
                result.answer, result.error_kind or "ok", len(result.attempts),
            )  # fmt: skip
        if self.on_answer is not None:
            self.on_answer(result, question.pixels)
        return result

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


async def _outlast(running: asyncio.Future[Result]) -> None:
    """Wait until the worker thread behind ``running`` has ended, whatever further
    cancellations arrive meanwhile (they are taken up by the caller's own ``raise``)."""
    while not running.done():
        try:
            await asyncio.wait({running})
        except asyncio.CancelledError:
            continue
    if not running.cancelled():
        running.exception()  # retrieved: the thread's Cancelled is expected, not news
