"""The statistics an accuracy claim needs: a bootstrap interval, a proportion's Wilson interval
and an exact paired test."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ROUNDS = 2000


def interval(scores: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The percentile-bootstrap 95% interval of the mean score (deterministic for a seed)."""
    values = np.asarray(scores, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        middle = float(values.mean()) if len(values) else 0.0
        return middle, middle
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=CONFIDENCE,
        n_resamples=ROUNDS,
        method="percentile",
        batch=100,  # resamples at a time: memory stays small on 200k-item runs
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The Wilson score 95% interval of a proportion ``successes / n`` ((0, 1) when n is 0)."""
    if n == 0:
        return (0.0, 1.0)
    found = stats.binomtest(successes, n).proportion_ci(CONFIDENCE, method="wilson")
    return float(found.low), float(found.high)


def mcnemar_p(only_first: int, only_second: int) -> float:
    """Exact McNemar test: the two-sided p-value that the discordant items split this unevenly
    by chance (items right in one run only; items right or wrong in both do not count)."""
    discordant = only_first + only_second
    if discordant == 0:
        return 1.0
    return float(stats.binomtest(only_first, discordant, 0.5).pvalue)
