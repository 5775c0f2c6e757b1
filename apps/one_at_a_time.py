"""One run at a time on the app's shared agent: a worker thread per run, its progress streamed
from typed agent events, and a session's way to cancel its own run."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vpagent.apps.render import BUSY, progress_text
from vpagent.events import Event, EventCallback

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


class RunCancelled(Exception):
    """Raised from the progress callback to stop a run the user cancelled."""


@dataclass
class Done:
    """How a run ended: its value, or the error it raised."""

    value: Any = None
    error: BaseException | None = None


@dataclass
class _Run:
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)


class OneRunAtATime:
    """Runs work one piece at a time in a worker thread and streams its progress."""

    def __init__(self) -> None:
        self.busy = threading.Lock()
        self.runs: dict[str, _Run] = {}

    def cancel(self, session: str | None) -> None:
        """Stop ``session``'s run at its next event (an LLM call in flight finishes first)."""
        run = self.runs.get(session) if session else None
        if run is not None:
            run.cancelled.set()

    def stream(
        self, session: str | None, work: Callable[[EventCallback], Any]
    ) -> Iterator[tuple[str | None, Done | None]]:
        """Run ``work(on_event)``; yield (progress markdown, None) then (None, Done).

        The worker's exceptions are yielded in the Done, never raised into gradio.
        """
        run = _Run()
        if session:
            self.runs[session] = run
        started = time.perf_counter()
        events: list[tuple[float, str]] = []
        while not self.busy.acquire(timeout=POLL_SECONDS):
            if run.cancelled.is_set():
                yield None, Done(error=RunCancelled())
                return
            waited = time.perf_counter() - started
            yield f"{BUSY} Waiting for the previous run to finish… ({waited:.0f} s)", None

        def on_event(event: Event) -> None:
            if run.cancelled.is_set():
                raise RunCancelled()
            run.events.put(event)

        def worker() -> None:
            try:
                run.events.put(Done(value=work(on_event)))
            except BaseException as error:  # reported in the page, logged here
                if not isinstance(error, RunCancelled | ValueError):
                    log.exception("the run failed")
                run.events.put(Done(error=error))
            finally:
                self.busy.release()

        threading.Thread(target=worker, name="vpagent-ui-run", daemon=True).start()
        last_yield = 0.0
        while True:
            try:
                item = run.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                item = None
            if isinstance(item, Done):
                if session and self.runs.get(session) is run:
                    del self.runs[session]
                yield None, item
                return
            if item is not None:
                events.append((time.perf_counter() - started, item.describe()))
            if item is not None or time.perf_counter() - last_yield >= 1.0:
                last_yield = time.perf_counter()
                yield progress_text(events, started), None
