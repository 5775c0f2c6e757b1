"""Admission control: so many questions answered at once, so many waiting, the rest refused.

Past both limits a request gets 429 with ``Retry-After`` (the expected wait, from recent
service times); while the server drains for shutdown, 503. A waiter that goes away (client
disconnect, deadline) leaves the queue at once.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

SERVICE_SECONDS_GUESS = 10.0  # before the first answer: a question on two CPU cores
SMOOTHING = 0.2  # weight of the newest service time in the running estimate


@dataclass
class Refused(Exception):
    """The server will not take the question now; retry after ``retry_after`` seconds."""

    status: int
    detail: str
    retry_after: int
    reason: str  # metrics label: queue_full, draining


class Admission:
    """``max_concurrent`` places, ``max_queue`` waiting; FIFO (asyncio's semaphore)."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.running = 0
        self.waiting = 0
        self.draining = False
        self.service_seconds = SERVICE_SECONDS_GUESS
        self._places = asyncio.Semaphore(max_concurrent)

    def retry_after(self) -> int:
        """Seconds until a place is likely free for one more request."""
        rounds = (self.waiting + 1) / self.max_concurrent
        return max(1, math.ceil(rounds * self.service_seconds))

    def check(self) -> None:
        """Raise :class:`Refused` if a new request would not be let in now."""
        if self.draining:
            raise Refused(503, "the server is shutting down", self.retry_after(), "draining")
        if self.running + self.waiting >= self.max_concurrent + self.max_queue:
            raise Refused(
                429,
                f"the server is busy: {self.running} questions answered, {self.waiting} waiting",
                self.retry_after(),
                "queue_full",
            )

    @asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """Hold one place while the block runs; wait in the queue for it, or be refused."""
        self.check()
        self.waiting += 1
        try:
            await self._places.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        started = asyncio.get_running_loop().time()
        try:
            yield
        finally:
            seconds = asyncio.get_running_loop().time() - started
            self.service_seconds += SMOOTHING * (seconds - self.service_seconds)
            self.running -= 1
            self._places.release()
