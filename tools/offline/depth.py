"""Depth stand-in: a ground-plane heuristic, because no depth model ships in any registry package.

For a camera looking at a roughly horizontal ground (street scenes, rooms, beaches), things lower
in the picture stand closer to the camera. The map is therefore a function of the row only: 0 at
the bottom row, 1 at the top row (larger = farther, as the DepthEstimator contract asks).
Comparing the depth of two objects with this map means comparing where their bottoms or
centres sit. It is wrong for aerial views, walls, close-ups and anything flying or hanging;
it knows nothing about the image content. Real depth (DPT, Depth Anything) needs the 'hf' profile.

For a marked point (:func:`ground_contact`) the stand-in uses the detector's objects: a point on
an object stands for the whole object, so it is read where that object meets the ground (the
middle of its box's bottom edge): a point on the head of a near person is near, even though it
sits high in the picture. Where the boxes of several objects hold the point, the one whose box
reaches lowest is taken as the one in front (the occluder is closer). A point on no object is
read where it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vpagent.tools.roles import DepthEstimator, Image
from vpagent.tools.types import Detection, ToolInfo


def front_object(point: tuple[float, float], objects: Sequence[Detection]) -> Detection | None:
    """The object under ``point``: of the boxes that hold it, the one reaching lowest (in front
    on a level ground; an occluder's box reaches lower than what it hides), else None."""
    x, y = point
    under = [o for o in objects if o.box.x0 <= x <= o.box.x1 and o.box.y0 <= y <= o.box.y1]
    return max(under, key=lambda o: (o.box.y1, -o.box.area), default=None)


def ground_contact(
    point: tuple[float, float], objects: Sequence[Detection]
) -> tuple[tuple[float, float], Detection | None]:
    """Where the depth of a marked ``point`` is read: the bottom middle of the object under it
    (:func:`front_object`), else the point itself; and that object."""
    found = front_object(point, objects)
    if found is None:
        return point, None
    return ((found.box.x0 + found.box.x1) / 2, found.box.y1 - 1), found


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
                "plane, wrong for aerial views, walls and close-ups; a marked point on a "
                "detected object is read at the object's ground contact (its box's bottom), "
                "the lowest-reaching box in front where boxes overlap"
            ),
        )
