"""Lazy, thread-safe model holder shared by the offline backends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """Builds its value on the first :meth:`get`, once, even when threads race for it.

    A failed build (e.g. ModelUnavailable) is not cached: the next call tries again, so a user who
    installs the missing package does not have to restart a long-running server.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value
