"""Micro-batching: calls from concurrent programs are collected into one model call."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

Request = TypeVar("Request")
Response = TypeVar("Response")


class MicroBatcher(Generic[Request, Response]):
    """Collects requests for up to ``window_s`` (or ``max_batch`` items) and runs them together.

    If a batch fails, its items are retried one by one so that one bad input fails only the
    call that sent it.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Request]], list[Response]],
        *,
        window_s: float,
        max_batch: int,
        name: str,
    ) -> None:
        self._run_batch = run_batch
        self._window_s = window_s
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[tuple[Request, Future[Response]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()
        self.batch_sizes: list[int] = []

    def __call__(self, request: Request) -> Response:
        future: Future[Response] = Future()
        self._queue.put((request, future))
        return future.result()

    def _collect(self) -> list[tuple[Request, Future[Response]]]:
        batch = [self._queue.get()]
        deadline = time.monotonic() + self._window_s
        while len(batch) < self._max_batch:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            batch.append(item)
        return batch

    def _loop(self) -> None:
        while True:
            batch = self._collect()
            self.batch_sizes.append(len(batch))
            requests = [request for request, _ in batch]
            try:
                responses = self._run_batch(requests)
                if len(responses) != len(requests):
                    raise RuntimeError(
                        f"batch returned {len(responses)} results for {len(requests)} inputs"
                    )
            except Exception as error:
                if len(batch) == 1:
                    batch[0][1].set_exception(error)
                    continue
                for request, future in batch:
                    self._run_single(request, future)
                continue
            for (_, future), response in zip(batch, responses, strict=True):
                future.set_result(response)

    def _run_single(self, request: Request, future: Future[Response]) -> None:
        try:
            future.set_result(self._run_batch([request])[0])
        except Exception as error:
            future.set_exception(error)
