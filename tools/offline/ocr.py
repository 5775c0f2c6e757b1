"""OCR of the offline pack: PP-OCRv4 through ``rapidocr-onnxruntime`` (models inside the wheel).

Detection runs with ``det_limit_type="max", det_limit_side_len=960``: large photos are shrunk to
960 pixels on their long side (the default "min" mode enlarges them instead and is several times
slower). Small images (e.g. a crop of a sign) are enlarged first, up to ``upscale_to`` pixels on
the long side and at most ``max_upscale`` times, because the detector misses text a few pixels
tall. Lines come back in reading order (top to bottom, then left to right).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np

from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.offline._image import as_rgb
from vpagent.tools.offline._lazy import Lazy
from vpagent.tools.roles import OCR, Image
from vpagent.tools.types import Box, TextLine, ToolInfo

DET_LIMIT_SIDE = 960
UPSCALE_TO = 960
MAX_UPSCALE = 3.0
TEXT_SCORE = 0.5
_PATCH_LOCK = threading.Lock()


class RapidOCRReader(OCR):
    """PP-OCRv4 text lines with boxes (axis-aligned hulls of the detected quadrilaterals)."""

    backend = "rapidocr"

    def __init__(
        self,
        det_limit_side_len: int = DET_LIMIT_SIDE,
        text_score: float = TEXT_SCORE,
        upscale_to: int = UPSCALE_TO,
        max_upscale: float = MAX_UPSCALE,
        num_threads: int = 2,
    ) -> None:
        self.det_limit_side_len = det_limit_side_len
        self.text_score = text_score
        self.upscale_to = upscale_to
        self.max_upscale = max_upscale
        self.num_threads = num_threads
        self._engine: Lazy[Any] = Lazy(self._load)
        self._lock = threading.Lock()

    def _load(self) -> Any:
        paths = weights.packaged_files("ocr.")
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as error:
            raise ModelUnavailable(
                "rapidocr-onnxruntime is not installed; the offline OCR needs it. Install it "
                f"with: pip install 'rapidocr-onnxruntime==1.4.4' (or {weights.OFFLINE_EXTRA})"
            ) from error
        with _ort_without_spinning():
            return RapidOCR(
                det_limit_type="max",
                det_limit_side_len=self.det_limit_side_len,
                det_model_path=str(paths["ocr.det"]),
                rec_model_path=str(paths["ocr.rec"]),
                cls_model_path=str(paths["ocr.cls"]),
                text_score=self.text_score,
                intra_op_num_threads=self.num_threads,
                inter_op_num_threads=1,
            )

    def read(self, image: Image) -> list[TextLine]:
        rgb = as_rgb(image)
        height, width = rgb.shape[:2]
        scale = min(self.max_upscale, self.upscale_to / max(height, width, 1))
        scale = max(scale, 1.0)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # rapidocr takes arrays as BGR
        if scale > 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        engine = self._engine.get()
        with self._lock:
            result, _ = engine(bgr)
        lines = []
        for quad, text, confidence in result or []:
            points = np.asarray(quad, dtype=np.float64) / scale
            box = Box.of(
                [
                    max(points[:, 0].min(), 0.0),
                    max(points[:, 1].min(), 0.0),
                    min(points[:, 0].max(), width),
                    min(points[:, 1].max(), height),
                ]
            )
            text = str(text).strip()
            if text:
                lines.append(
                    TextLine(text=text, box=box, confidence=float(np.clip(confidence, 0.0, 1.0)))
                )
        return reading_order(lines)

    def text(self, image: Image) -> str:
        """All lines joined by newlines."""
        return "\n".join(line.text for line in self.read(image))

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="PP-OCRv4 det + rec, PP-OCR mobile v2 direction classifier (ONNX)",
            weights=weights.location_or_none("ocr.rec"),
            device="cpu",
            stand_in=False,
            note=f"rapidocr-onnxruntime, det_limit_type=max, det_limit_side_len="
            f"{self.det_limit_side_len}, {self.num_threads} threads",
        )


@contextmanager
def _ort_without_spinning() -> Iterator[None]:
    """Build rapidocr's ONNX Runtime sessions with thread spinning off.

    By default ORT's worker threads busy-wait after each run; on 2 cores that steals the CPU
    from whatever runs next in the toolbox (a detector pass right after OCR measured 90-170
    ms instead of 60 ms) and made OCR itself no faster. rapidocr 1.4.4 has no option for it, so
    its session-options factory is wrapped while the engine is built.
    """
    try:
        from rapidocr_onnxruntime.utils import infer_engine

        session_class = infer_engine.OrtInferSession
        original = session_class.__dict__["_init_sess_opts"]
    except (ImportError, AttributeError, KeyError):  # another rapidocr layout: keep its defaults
        yield
        return

    def options(config: dict[str, Any]) -> Any:
        opts = original.__func__(config)
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return opts

    with _PATCH_LOCK:
        session_class._init_sess_opts = staticmethod(options)
        try:
            yield
        finally:
            session_class._init_sess_opts = original


def reading_order(lines: list[TextLine]) -> list[TextLine]:
    """Sort lines top to bottom; lines whose vertical centres are within half a line height of
    each other count as one row and go left to right."""
    if not lines:
        return []
    ordered = sorted(lines, key=lambda line: (line.box.y0 + line.box.y1) / 2)
    rows: list[list[TextLine]] = [[ordered[0]]]
    for line in ordered[1:]:
        row = rows[-1]
        centre = (line.box.y0 + line.box.y1) / 2
        row_centre = np.mean([(r.box.y0 + r.box.y1) / 2 for r in row])
        height = np.mean([r.box.y1 - r.box.y0 for r in row])
        if abs(centre - row_centre) <= height / 2:
            row.append(line)
        else:
            rows.append([line])
    return [line for row in rows for line in sorted(row, key=lambda r: r.box.x0)]
