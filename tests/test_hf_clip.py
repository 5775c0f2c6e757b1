"""ClipMatcher on tiny random CLIP and SigLIP models saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_clip, build_siglip, test_image
from vpagent.tools.hf.clip import ClipMatcher

pytestmark = pytest.mark.hf

TEXTS = ["a photo of a cat", "a photo of a dog", "a red car"]


@pytest.fixture(scope="module", params=["clip", "siglip"])
def matcher(request, tmp_path_factory):
    build = {"clip": build_clip, "siglip": build_siglip}[request.param]
    path = build(tmp_path_factory.mktemp(request.param))
    return ClipMatcher(str(path), device="cpu")


def test_scores_are_probabilities(matcher):
    scores = matcher.scores(test_image(), TEXTS)
    assert len(scores) == len(TEXTS)
    assert all(isinstance(s, float) and 0.0 <= s <= 1.0 for s in scores)
    if not matcher._sigmoid:
        assert sum(scores) == pytest.approx(1.0, abs=1e-5)
    assert matcher.best_match(test_image(), TEXTS) in range(len(TEXTS))
    assert isinstance(matcher.verify(test_image(), "car", "red"), bool)


def test_batched_equals_unbatched(matcher):
    images = [test_image(seed=s, height=40 + 8 * s) for s in range(3)]
    texts = [TEXTS, TEXTS[:2], ["a blue car", "a photo of a cat"]]
    batched = matcher.score_batch(images, texts)
    single = [matcher.scores(image, t) for image, t in zip(images, texts, strict=True)]
    for b, s in zip(batched, single, strict=True):
        np.testing.assert_allclose(b, s, rtol=1e-4, atol=1e-6)


def test_info_after_load(matcher):
    matcher.load()
    info = matcher.info()
    assert info.role == "matcher" and info.backend == "clip"
    assert info.device == "cpu" and info.weights and not info.stand_in


def test_empty_inputs(matcher):
    assert matcher.score_batch([], []) == []
    assert matcher.score_batch([test_image()], [[]]) == [[]]
