"""DptDepth on tiny random DPT and Depth Anything models saved to disk and loaded back."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_depth_anything, build_dpt, test_image
from vpagent.tools.hf.depth import DptDepth

pytestmark = pytest.mark.hf

IMAGES = [
    test_image(height=40, width=64),
    test_image(height=40, width=64, seed=1),
    test_image(height=50, width=30, seed=2),
]


@pytest.fixture(scope="module", params=["dpt", "depth-anything"])
def depth(request, tmp_path_factory):
    build = {"dpt": build_dpt, "depth-anything": build_depth_anything}[request.param]
    return DptDepth(str(build(tmp_path_factory.mktemp(request.param))), device="cpu")


def test_depth_maps_are_image_sized(depth):
    for image in IMAGES:
        result = depth.depth(image)
        assert result.dtype == np.float32 and result.shape == image.shape[:2]
        assert np.isfinite(result).all()
        assert result.min() >= 0.0  # relative models: flipped disparity, max - d
    assert depth.info().role == "depth"


def _close(a, b):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(b).max())))


def test_batched_equals_unbatched(depth):
    batched = depth.depth_batch(IMAGES)
    singles = [depth.depth(image) for image in IMAGES]
    for got, single in zip(batched, singles, strict=True):
        _close(got, single)
    # the maps depend on the image, so a mix-up inside the batch would show
    assert np.abs(singles[0] - singles[1]).max() > 1e-3 * np.abs(singles[0]).max()


def test_relative_output_is_flipped_disparity(depth):
    """larger = farther: the map is max(disparity) - disparity of the raw prediction."""
    as_depth = DptDepth(depth.model, device="cpu", output="depth")  # raw prediction
    raw = as_depth.depth(IMAGES[0])
    _close(depth.depth(IMAGES[0]), raw.max() - raw)


def test_metric_config_is_not_flipped(tmp_path):
    metric = DptDepth(str(build_depth_anything(tmp_path / "m", metric=True)), device="cpu")
    metric.load()
    assert not metric._disparity
