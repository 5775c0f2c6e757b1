"""The ground-plane depth stand-in."""

from __future__ import annotations

import numpy as np

from vpagent.tools.offline.depth import VerticalPositionDepth


def test_lower_is_closer() -> None:
    depth = VerticalPositionDepth()
    maps = depth.depth_batch([np.zeros((5, 7, 3), np.uint8), np.zeros((1, 3, 3), np.uint8)])
    assert maps[0].shape == (5, 7) and maps[0].dtype == np.float32
    assert maps[0][0, 0] == 1.0 and maps[0][-1, 0] == 0.0  # top row farthest
    assert np.all(np.diff(maps[0][:, 3]) < 0) and np.all(maps[0][2] == maps[0][2, 0])
    assert maps[1].shape == (1, 3)


def test_named_as_a_stand_in() -> None:
    info = VerticalPositionDepth().info()
    assert info.stand_in and info.backend == "vertical-position" and info.weights is None
