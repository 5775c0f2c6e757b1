"""Depth stand-in: a ground-plane heuristic, because no depth model ships in any registry package.

For a camera looking at a roughly horizontal ground (street scenes, rooms, beaches), things lower
in the picture stand closer to the camera. The map is therefore a function of the row only: 0 at
the bottom row, 1 at the top row (larger = farther, as the DepthEstimator contract asks).
Comparing the depth of two objects with this map means comparing where their bottoms or
centres sit. It is wrong for aerial views, walls, close-ups and anything flying or hanging;
it knows nothing about the image content. Real depth (DPT, Depth Anything) needs the 'hf' profile.
"""

from __future__ import annotations

import numpy as np

from vpagent.tools.roles import DepthEstimator, Image
from vpagent.tools.types import ToolInfo


class VerticalPositionDepth(DepthEstimator):
    """Relative "depth" = height in the image (ground-plane assumption). A named stand-in."""

    backend = "vertical-position"

    def depth_batch(self, images: list[Image]) -> list[np.ndarray]:
        return [self._depth(np.asarray(image).shape[:2]) for image in images]

    @staticmethod
    def _depth(shape: tuple[int, ...]) -> np.ndarray:
        height, width = int(shape[0]), int(shape[1])
        rows = np.linspace(1.0, 0.0, num=height, dtype=np.float32) if height > 1 else np.zeros(1)
        return np.repeat(rows.astype(np.float32)[:, None], width, axis=1)

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="ground-plane heuristic (no model)",
            weights=None,
            device="cpu",
            stand_in=True,
            note=(
                "stand-in: depth = height in the image (lower = closer); assumes a level ground "
                "plane, wrong for aerial views, walls and close-ups"
            ),
        )
