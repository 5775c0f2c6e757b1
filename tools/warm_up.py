"""Load every specialist at start-up, so that no question pays for loading one.

The backends load their models on first use (the offline matcher's MiniLM alone takes about
4 s), and without this the first question that needs a role waits for it. :func:`warm_up`
sends each role one tiny request on a blank image. A role whose backend is a stand-in VQA (a
language model reading what the other roles see) is left out: it has nothing of its own to
load, and warming it would spend a model call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vpagent.tools.errors import CannotAnswer, ToolError
from vpagent.tools.registry import BACKENDS
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
    """The smallest request that makes ``specialist`` load everything it uses."""
    if isinstance(specialist, Detector):
        return lambda image: specialist.detect(image, ["person"])
    if isinstance(specialist, Segmenter):
        return lambda image: specialist.segment(image)
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


def warm_up(toolbox: Toolbox) -> WarmUp:
    """Load each role's backend now (a stand-in VQA excepted, see the module). A role that
    fails is logged and reported, not raised: questions that do not need it still work, and
    those that do get the same error then."""
    report = WarmUp()
    blank = np.full((BLANK_SIDE, BLANK_SIDE, 3), 127, dtype=np.uint8)
    for role in BACKENDS:
        started = time.perf_counter()
        try:
            specialist = toolbox.specialist(role)
            if isinstance(specialist, VQA) and specialist.info().stand_in:
                continue
            _request(specialist)(blank)
        except CannotAnswer:  # a refusal comes from a loaded model
            pass
        except ToolError as error:
            log.warning("could not load the %s at start-up: %s", role, error)
            report.failed[role] = str(error)
            continue
        report.seconds[role] = time.perf_counter() - started
    return report
