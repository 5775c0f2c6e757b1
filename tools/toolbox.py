"""The toolbox: specialists loaded once and lazily, calls batched across programs.

An in-process facade over the specialists, not a network server. Thread-safe: one toolbox
serves every concurrent program of this process; results are cached by the caller
(:class:`vpagent.tools.program_host.ProgramHost`) through :attr:`Toolbox.cache`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vpagent.tools.batching import MicroBatcher
from vpagent.tools.cache import ResultCache, json_digest
from vpagent.tools.config import ToolboxConfig
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.registry import BACKENDS, build_specialist
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
from vpagent.tools.types import Box, Detection, Mask, PropertyEvidence, TextLine, ToolInfo

LLM = Callable[[str], str]


def _no_llm(_prompt: str) -> str:
    raise CannotAnswer("this tool needs a language model and none is configured")


def _columns(requests: list[tuple[Any, ...]]) -> list[list[Any]]:
    """[(a1, b1), (a2, b2)] -> [[a1, a2], [b1, b2]]: batch inputs per argument."""
    return [list(column) for column in zip(*requests, strict=True)]


RESULTS_REVISION = 6  # bump when a tool's result changes for the same inputs and settings (2:
# find ranks a closed-vocabulary detector's boxes by the colour or clothing in the name; 3: the
# offline matcher also looks for sunglasses on a face box; 4: the scene VQA's answer prompt
# reads its instructions after the question, and a guess after its refusal has its own prompt;
# 5: the scene VQA's prompts share one start, with the description's legend, and every guess
# shares the answer prompt's through the question; 6: their last lines are the old ones again)


def results_namespace(config: ToolboxConfig) -> str:
    """A digest of what tool results depend on besides their inputs: every role's backend, model
    and options, the offline detector's calibration, the LLM the stand-in tools ask, and the
    vpagent version."""
    from vpagent import __version__

    payload = {
        "tools": config.tools.model_dump(mode="json"),
        "llm": config.llm_identity,
        "version": __version__,
        "revision": RESULTS_REVISION,
        "detector_calibration": _detector_calibration(config),
    }
    return json_digest(payload)[:16]


def _detector_calibration(config: ToolboxConfig) -> dict[str, Any] | None:
    """The offline detector's counting calibration (a recalibration changes its boxes)."""
    if config.tools.detector.backend != "ssd-coco":
        return None
    from vpagent.tools.offline.detector import CALIBRATION

    return CALIBRATION.model_dump(mode="json")


class Toolbox:
    """Owns the specialists of one configuration and the batchers in front of them."""

    def __init__(
        self,
        config: ToolboxConfig,
        *,
        specialists: dict[str, Specialist] | None = None,
        llm: LLM | None = None,
    ) -> None:
        self.config = config
        self.llm = llm
        self.cache = ResultCache(
            config.cache.max_entries, config.cache.directory, results_namespace(config)
        )
        self._specialists: dict[str, Specialist] = dict(specialists or {})
        self._build_lock = threading.RLock()
        self._batchers: dict[str, MicroBatcher[Any, Any]] = {}
        self.model_calls = 0
        self.role_seconds: dict[str, float] = {}  # model time per role, since the start
        self._count_lock = threading.Lock()

    # Specialists.

    def specialist(self, role: str) -> Specialist:
        """The backend serving ``role``, built on first use."""
        with self._build_lock:
            if role not in self._specialists:
                config = getattr(self.config.tools, role)
                self._specialists[role] = build_specialist(
                    role,
                    config.backend,
                    model=config.model,
                    device=self.config.device,
                    options=config.options,
                    dependencies={
                        "detector": lambda: self.specialist("detector"),
                        "matcher": lambda: self.specialist("matcher"),
                        "ocr": lambda: self.specialist("ocr"),
                        "faces": lambda: self.specialist("faces"),
                        "llm": lambda: self.llm or _no_llm,
                    },
                )
            return self._specialists[role]

    def describe(self) -> list[ToolInfo]:
        """What serves each role (for `vpagent doctor`); builds but does not load models."""
        return [self.specialist(role).info() for role in BACKENDS]

    def _batcher(self, name: str, run_batch: Callable[[list[Any]], list[Any]]) -> MicroBatcher:
        with self._build_lock:
            if name not in self._batchers:
                self._batchers[name] = MicroBatcher(
                    run_batch,
                    window_s=self.config.batching.window_ms / 1000,
                    max_batch=self.config.batching.max_batch,
                    name=name,
                )
            return self._batchers[name]

    def _counted(
        self, role: str, run: Callable[[list[Any]], list[Any]]
    ) -> Callable[[list[Any]], list[Any]]:
        """``run``, counting its calls and adding its seconds to ``role_seconds[role]``."""

        def wrapper(requests: list[Any]) -> list[Any]:
            started = time.perf_counter()
            try:
                return run(requests)
            finally:
                with self._count_lock:
                    self.model_calls += 1
                    seconds = time.perf_counter() - started
                    self.role_seconds[role] = self.role_seconds.get(role, 0.0) + seconds

        return wrapper

    # Operations (numpy images in, typed values out).

    def detect(self, image: np.ndarray, names: list[str]) -> list[Detection]:
        detector = self.specialist("detector")
        assert isinstance(detector, Detector)
        batcher = self._batcher(
            "detect",
            self._counted("detector", lambda reqs: detector.detect_batch(*_columns(reqs))),
        )
        return batcher((image, names))

    def detect_faces(self, image: np.ndarray) -> list[Detection]:
        faces = self.specialist("faces")
        assert isinstance(faces, FaceDetector)
        return self._counted("faces", lambda reqs: [faces.detect_faces(reqs[0])])([image])[0]

    def verify_property(self, image: np.ndarray, name: str, prop: str) -> bool:
        matcher = self.specialist("matcher")
        assert isinstance(matcher, Matcher)
        return self._counted("matcher", lambda reqs: [matcher.verify(*reqs[0])])(
            [(image, name, prop)]
        )[0]

    def property_evidence(self, image: np.ndarray, name: str, prop: str) -> PropertyEvidence:
        """The matcher's graded evidence that the ``name`` in ``image`` has ``prop``."""
        matcher = self.specialist("matcher")
        assert isinstance(matcher, Matcher)
        run = self._counted("matcher", lambda reqs: [matcher.property_evidence(*reqs[0])])
        return run([(image, name, prop)])[0]

    def best_text_match(self, image: np.ndarray, options: list[str]) -> int:
        matcher = self.specialist("matcher")
        assert isinstance(matcher, Matcher)
        return self._counted("matcher", lambda reqs: [matcher.best_match(*reqs[0])])(
            [(image, options)]
        )[0]

    def caption(self, image: np.ndarray) -> str:
        captioner = self.specialist("captioner")
        assert isinstance(captioner, Captioner)
        return self._batcher("caption", self._counted("captioner", captioner.caption_batch))(image)

    def answer(self, image: np.ndarray, question: str) -> str:
        vqa = self.specialist("vqa")
        assert isinstance(vqa, VQA)
        batcher = self._batcher(
            "vqa",
            self._counted("vqa", lambda reqs: vqa.answer_batch(*_columns(reqs))),
        )
        return batcher((image, question))

    def read_text(self, image: np.ndarray) -> list[TextLine]:
        ocr = self.specialist("ocr")
        assert isinstance(ocr, OCR)
        return self._counted("ocr", lambda reqs: [ocr.read(reqs[0])])([image])[0]

    def depth(self, image: np.ndarray) -> np.ndarray:
        depth = self.specialist("depth")
        assert isinstance(depth, DepthEstimator)
        return self._batcher("depth", self._counted("depth", depth.depth_batch))(image)

    def segment(self, image: np.ndarray, box: Box | None) -> Mask:
        segmenter = self.specialist("segmenter")
        assert isinstance(segmenter, Segmenter)
        batcher = self._batcher(
            "segment",
            self._counted(
                "segmenter",
                lambda reqs: segmenter.segment_batch(*_columns(reqs), [None] * len(reqs)),
            ),
        )
        return batcher((image, box))

    def llm_query(self, question: str) -> str:
        return self._counted("llm", lambda reqs: [(self.llm or _no_llm)(reqs[0])])([question])[0]
