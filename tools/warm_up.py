"""Load every specialist at start-up, so that no question pays for loading one.

The backends load their models on first use (the offline matcher's MiniLM alone takes about
4 s), and without this the first question that needs a role waits for it. :func:`warm_up`
sends each role one tiny request on a blank image. Left out: a stand-in VQA (a language model
reading what the other roles see) and the roles served by a remote model: they have nothing
of their own to load here, and a request would spend a model call (or wait for a server that
is down). A role that fails, for any reason, is logged and reported: start-up goes on, and the
questions that need the role get the error then.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.registry import BACKENDS, REMOTE_BACKENDS
from vpagent.tools.roles import (
    OCR,
    VQA,
    Captioner,
    DepthEstimator,
    Detector,
    FaceDetector,
    Matcher,
    Segmenter,
    Specialist,
)
from vpagent.tools.toolbox import Toolbox

BLANK_SIDE = 64

log = logging.getLogger(__name__)


def _request(specialist: Specialist) -> Callable[[np.ndarray], Any]:
    """The smallest request that makes ``specialist`` load its models."""
    if isinstance(specialist, Detector):
        return lambda image: specialist.detect(image, ["person"])
    if isinstance(specialist, Segmenter):
        return specialist.segment
    if isinstance(specialist, Matcher):  # an object word and a colour word: both halves load
        return lambda image: specialist.scores(image, ["a dog", "red"])
    if isinstance(specialist, OCR):
        return specialist.read
    if isinstance(specialist, DepthEstimator):
        return specialist.depth
    if isinstance(specialist, FaceDetector):
        return specialist.detect_faces
    if isinstance(specialist, Captioner):
        return specialist.caption
    if isinstance(specialist, VQA):
        return lambda image: specialist.answer(image, "What is in the image?")
    raise TypeError(f"no warm-up request for {type(specialist).__name__}")


@dataclass
class WarmUp:
    """What :func:`warm_up` did: seconds per role warmed, and the roles that failed (why)."""

    seconds: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        done = ", ".join(f"{role} {s:.1f} s" for role, s in self.seconds.items()) or "none"
        failed = "".join(f"; {role} failed: {why}" for role, why in self.failed.items())
        return f"tools loaded: {done}{failed}"


def _left_out(specialist: Specialist) -> bool:
    """A stand-in VQA or a remote model: nothing to load here (see the module)."""
    if getattr(specialist, "backend", None) in REMOTE_BACKENDS:
        return True
    return isinstance(specialist, VQA) and specialist.info().stand_in


def warm_up(toolbox: Toolbox) -> WarmUp:
    """Load each role's backend now (but those :func:`_left_out`). A role that fails is logged
    and reported, never raised (see the module). A role's seconds include what it loads for
    another (the scene captioner loads the OCR)."""
    report = WarmUp()
    blank = np.full((BLANK_SIDE, BLANK_SIDE, 3), 127, dtype=np.uint8)
    for role in BACKENDS:
        started = time.perf_counter()
        try:
            specialist = toolbox.specialist(role)
            if _left_out(specialist):
                continue
            _request(specialist)(blank)
        except CannotAnswer:  # a refusal comes from a loaded model
            pass
        except Exception as error:  # a missing model, a GPU out of memory, a bad option
            log.warning("could not load the %s at start-up: %s", role, error, exc_info=True)
            report.failed[role] = str(error)
            continue
        report.seconds[role] = time.perf_counter() - started
    return report
