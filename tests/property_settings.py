"""Hypothesis settings shared by the property tests (tests/test_property_*.py).

The default run is reproducible and bounded: a fixed seed (``derandomize``), a fixed number of
examples per test, no example database and no per-example deadline (the machine is shared, so
timings vary). The ``fuzz`` marker's tests run FUZZ_FACTOR times as many with a fresh seed.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

FUZZ_FACTOR = 10

_BASE = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fixed(examples: int) -> settings:
    """The default run's settings: ``examples`` examples, always the same ones."""
    return settings(_BASE, max_examples=examples)


def fresh(examples: int) -> settings:
    """The ``fuzz`` marker's settings: FUZZ_FACTOR times ``examples``, a new seed each run."""
    return settings(_BASE, max_examples=examples * FUZZ_FACTOR, derandomize=False)
