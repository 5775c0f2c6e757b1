"""OwlDetector on tiny random OWL-ViT and OWLv2 models saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_owl, test_image
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.hf.owl import OwlDetector
from vpagent.tools.types import Detection

pytestmark = pytest.mark.hf


@pytest.fixture(scope="module", params=[1, 2], ids=["owlvit", "owlv2"])
def detector(request, tmp_path_factory):
    path = build_owl(tmp_path_factory.mktemp(f"owl{request.param}"), version=request.param)
    # threshold 0: a random model scores low; keep everything so the shapes get exercised
    return OwlDetector(str(path), device="cpu", threshold=0.0, nms_iou=None)


def _check(detections, names, image):
    height, width = image.shape[:2]
    assert detections, "threshold 0 keeps every patch"
    for d in detections:
        assert isinstance(d, Detection)
        assert d.label in names
        assert 0.0 <= d.score <= 1.0
        assert 0 <= d.box.x0 < d.box.x1 <= width and 0 <= d.box.y0 < d.box.y1 <= height


def test_detect_returns_boxes_in_image(detector):
    image = test_image(height=40, width=72)
    names = ["cat", "red car"]
    _check(detector.detect(image, names), names, image)
    assert detector.detect(image, []) == []


def test_batched_equals_unbatched(detector):
    images = [test_image(seed=s, height=36 + 10 * s, width=60 - 6 * s) for s in range(3)]
    names = [["cat", "dog", "car"], ["dog"], ["red car", "table"]]
    batched = detector.detect_batch(images, names)
    for image, per, got in zip(images, names, batched, strict=True):
        _check(got, per, image)
        single = detector.detect(image, per)
        assert [d.label for d in got] == [d.label for d in single]
        np.testing.assert_allclose(
            [d.box.as_list() for d in got], [d.box.as_list() for d in single], atol=1e-3
        )
        np.testing.assert_allclose([d.score for d in got], [d.score for d in single], atol=1e-5)


def test_nms_and_max_detections(detector):
    limited = OwlDetector(
        detector.model, device="cpu", threshold=0.0, nms_iou=0.3, max_detections=3
    )
    found = limited.detect(test_image(), ["cat"])
    assert 0 < len(found) <= 3
    assert limited.info().backend == "owlvit"


def test_a_query_longer_than_the_text_encoder_reads_is_refused(detector):
    long_name = "person wearing a red hat and a blue scarf next to the old green bicycle"
    with pytest.raises(CannotAnswer, match=r"is 68 tokens and OWL-ViT reads at most 64"):
        detector.detect(test_image(), ["cat", long_name])
    assert detector.detect(test_image(), ["red hat"])  # a short one still works
