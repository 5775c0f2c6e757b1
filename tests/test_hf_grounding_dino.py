"""GroundingDinoDetector on a tiny random Grounding DINO saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_grounding_dino, test_image
from vpagent.tools.hf.grounding_dino import GroundingDinoDetector, build_prompt
from vpagent.tools.types import Detection

pytestmark = pytest.mark.hf


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    path = build_grounding_dino(tmp_path_factory.mktemp("gdino"))
    return GroundingDinoDetector(str(path), device="cpu", threshold=0.0, nms_iou=None)


def _check(detections, names, image):
    height, width = image.shape[:2]
    assert detections
    for d in detections:
        assert isinstance(d, Detection) and d.label in names and 0.0 <= d.score <= 1.0
        assert 0 <= d.box.x0 < d.box.x1 <= width and 0 <= d.box.y0 < d.box.y1 <= height


def test_prompt_spans():
    prompt, spans = build_prompt(["Cat", "red  car", "a.b"])
    assert prompt == "cat . red car . a b ."
    assert [prompt[a:b] for a, b in spans] == ["cat", "red car", "a b"]


def test_token_spans_cover_each_name(detector):
    detector.load()
    prompt, spans = build_prompt(["cat", "red car"])
    (positions,) = detector._token_spans([prompt], [spans])
    ids = detector._processor.tokenizer(prompt)["input_ids"]
    tokenizer = detector._processor.tokenizer
    assert [tokenizer.decode([ids[p] for p in span]) for span in positions] == ["cat", "red car"]


def test_detect_returns_named_boxes_in_image(detector):
    image = test_image(height=40, width=72)
    names = ["cat", "red car"]
    _check(detector.detect(image, names), names, image)
    assert detector.detect(image, []) == []


def test_batched_equals_unbatched_same_size(detector):
    images = [test_image(seed=s) for s in range(3)]
    names = [["cat", "dog"], ["dog"], ["red car", "table", "cat"]]
    batched = detector.detect_batch(images, names)
    for image, per, got in zip(images, names, batched, strict=True):
        single = detector.detect(image, per)
        assert [d.label for d in got] == [d.label for d in single]
        np.testing.assert_allclose(
            [d.box.as_list() for d in got], [d.box.as_list() for d in single], atol=1e-3
        )
        np.testing.assert_allclose([d.score for d in got], [d.score for d in single], atol=1e-4)


def test_mixed_sizes_batch_is_well_formed(detector):
    images = [test_image(height=30, width=70), test_image(height=64, width=40)]
    names = [["cat"], ["dog", "car"]]
    for image, per, got in zip(images, names, detector.detect_batch(images, names), strict=True):
        _check(got, per, image)
