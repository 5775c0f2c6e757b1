"""Whether the student's confidence means something: AUROC, ECE and Platt scaling.

The student's confidence is the mean probability of its answer tokens. Fitted on a calibration
split, :class:`PlattScaling` (a temperature and a bias on the confidence's log-odds, the
one-score form of temperature scaling) maps it to the probability that the answer is right;
the map is increasing, so AUROC (does a higher confidence mean a right answer more often?) is
unchanged while the expected calibration error (ECE: the gap between confidence and accuracy,
over 10 equal-width bins, weighted by their items) falls. A threshold on the calibrated scale
has an equivalent on the raw one (:meth:`PlattScaling.raw_threshold`), which is what
``agent.student_threshold`` compares with.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

EPSILON = 1e-6
BINS = 10


def _logit(p: np.ndarray | float) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(clipped / (1 - clipped))


def auroc(scores: Sequence[float], correct: Sequence[bool]) -> float | None:
    """P(a right answer's score > a wrong one's), ties half; None without both kinds."""
    from scipy.stats import rankdata

    labels = np.asarray(correct, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if not positives or not negatives:
        return None
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def ece(probabilities: Sequence[float], correct: Sequence[bool], bins: int = BINS) -> float:
    """Expected calibration error over ``bins`` equal-width confidence bins."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(correct, dtype=np.float64)
    if not len(p):
        return 0.0
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() * abs(p[mask].mean() - y[mask].mean())
    return float(total / len(p))


class PlattScaling(BaseModel):
    """calibrated = sigmoid(slope * logit(confidence) + bias); slope = 1 / temperature."""

    slope: float = 1.0
    bias: float = 0.0

    @classmethod
    def fit(cls, confidences: Sequence[float], correct: Sequence[bool]) -> PlattScaling:
        """Maximum likelihood on (confidence, right or wrong) pairs (L-BFGS on the log loss, a
        small ridge keeping it finite on separable data)."""
        from scipy.optimize import minimize

        x = _logit(np.asarray(confidences))
        y = np.asarray(correct, dtype=np.float64)
        if not len(x):
            raise ValueError("no items to fit the calibration on")
        ridge = 1e-3

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = w[0] * x + w[1]
            p = np.exp(-np.logaddexp(0.0, -z))  # sigmoid(z), stable
            value = np.logaddexp(0.0, z).sum() - (y * z).sum() + ridge * (w @ w) / 2
            gradient = np.array([((p - y) * x).sum(), (p - y).sum()]) + ridge * w
            return float(value), gradient

        fitted = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B")
        return cls(slope=float(fitted.x[0]), bias=float(fitted.x[1]))

    def apply(self, confidences: Sequence[float]) -> list[float]:
        z = self.slope * _logit(np.asarray(confidences)) + self.bias
        return [float(v) for v in np.exp(-np.logaddexp(0.0, -z))]

    def raw_threshold(self, calibrated: float) -> float:
        """The raw confidence whose calibrated value is ``calibrated`` (slope > 0)."""
        if calibrated <= 0:
            return 0.0
        if calibrated >= 1 or self.slope <= 0:
            return 1.0
        z = (float(_logit(calibrated)) - self.bias) / self.slope
        return 1 / (1 + math.exp(-z))


class Quality(BaseModel):
    """How well a confidence separates right from wrong and how calibrated it is."""

    n: int
    accuracy: float
    auroc: float | None
    ece: float
    ece_raw: float


def quality(raw: Sequence[float], calibrated: Sequence[float], correct: Sequence[bool]) -> Quality:
    return Quality(
        n=len(correct),
        accuracy=float(np.mean(correct)) if len(correct) else 0.0,
        auroc=auroc(raw, correct),
        ece=ece(calibrated, correct),
        ece_raw=ece(raw, correct),
    )


def quality_per_type(
    types: Sequence[str],
    raw: Sequence[float],
    calibrated: Sequence[float],
    correct: Sequence[bool],
) -> dict[str, Quality]:
    """:func:`quality` of every question type, and of all items under ``"all"``."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, kind in enumerate(types):
        groups[kind].append(index)
    result = {"all": quality(raw, calibrated, correct)}
    for kind, rows in sorted(groups.items()):
        result[kind] = quality(
            [raw[i] for i in rows], [calibrated[i] for i in rows], [correct[i] for i in rows]
        )
    return result
