"""PP-OCRv4 (rapidocr-onnxruntime) on the bus photo."""

from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.types import Box, TextLine

pytest.importorskip("rapidocr_onnxruntime")
pytestmark = pytest.mark.slow

from vpagent.tools.offline.ocr import RapidOCRReader, reading_order  # noqa: E402


@pytest.fixture(scope="module")
def reader() -> RapidOCRReader:
    return RapidOCRReader()


@pytest.fixture(scope="module")
def bus(images_dir: Path) -> np.ndarray:
    return load_image(images_dir / "bus.jpg")


@pytest.fixture(scope="module")
def bus_lines(reader: RapidOCRReader, bus: np.ndarray) -> list[TextLine]:
    return reader.read(bus)


def _words(lines: list[TextLine]) -> list[str]:
    return [word.lower() for line in lines for word in line.text.replace("/", " ").split()]


def test_reads_the_words_on_the_bus(bus_lines: list[TextLine]) -> None:
    words = _words(bus_lines)
    assert "cero" in words and "emisiones" in words  # "cero emisiones" on the side
    # The LED destination sign "M1 SOL/SEVILLA": its V reads as U on this display.
    sign = " ".join(words).upper()
    assert "SOL" in sign
    best = max(difflib.SequenceMatcher(None, "SEVILLA", w.upper()).ratio() for w in words)
    assert best >= 0.8


def test_lines_have_boxes_inside_the_image_in_reading_order(
    bus_lines: list[TextLine], bus: np.ndarray
) -> None:
    height, width = bus.shape[:2]
    for line in bus_lines:
        assert 0 <= line.box.x0 < line.box.x1 <= width and 0 <= line.box.y0 < line.box.y1 <= height
        assert 0.5 <= line.confidence <= 1.0
    texts = [line.text.lower() for line in bus_lines]
    assert texts.index("cero") < texts.index("emisiones")  # "cero" sits above "emisiones"


def test_small_crops_are_enlarged_so_small_print_is_read(
    reader: RapidOCRReader, bus: np.ndarray
) -> None:
    logo = bus[300:380, 380:560]  # the "EMT MADRID" logo, about 10 pixels tall in the photo
    words = _words(reader.read(logo))
    assert "madrid" in words and "emt" in words
    for line in reader.read(logo):
        assert line.box.x1 <= logo.shape[1] and line.box.y1 <= logo.shape[0]


def test_no_text_gives_no_lines(reader: RapidOCRReader) -> None:
    assert reader.read(np.full((120, 160, 3), 200, dtype=np.uint8)) == []


def test_reading_order_groups_rows() -> None:
    def line(text: str, x: float, y: float) -> TextLine:
        return TextLine(text=text, box=Box.of([x, y, x + 40, y + 20]), confidence=0.9)

    ordered = reading_order([line("c", 0, 100), line("b", 100, 2), line("a", 0, 0)])
    assert [item.text for item in ordered] == ["a", "b", "c"]


def test_info() -> None:
    info = RapidOCRReader().info()
    assert info.backend == "rapidocr" and "det_limit_side_len=960" in info.note


def test_onnx_sessions_do_not_spin(reader: RapidOCRReader) -> None:
    engine = reader._engine.get()
    sessions = [engine.text_det.infer.session, engine.text_cls.infer.session]
    sessions.append(engine.text_rec.session.session)
    for session in sessions:
        options = session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
        assert options.intra_op_num_threads == 2
    from rapidocr_onnxruntime.utils import infer_engine

    assert infer_engine.OrtInferSession._init_sess_opts.__name__ == "_init_sess_opts"  # restored
