"""Geometry of the detector's tiled and mirrored passes (no model involved)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from vpagent.tools.offline.detector import (
    TILE_MIN_SIDE,
    TILE_OVERLAP,
    Candidate,
    SSDCocoDetector,
    _piece_of,
    _unflip,
    tile_regions,
)


@pytest.mark.parametrize("grid", [2, 3])
def test_tiles_cover_the_image_and_overlap(grid: int) -> None:
    width, height = 1000, 600
    regions = tile_regions(width, height, grid)
    assert len(regions) == grid * grid
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in regions:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    assert covered[:, : width - 1].all() and covered[: height - 1].all()
    first, second = regions[0], regions[1]
    assert second[0] < first[2]  # neighbours share a strip
    assert (first[2] - second[0]) == pytest.approx(TILE_OVERLAP * (first[2] - first[0]), abs=2)


def test_small_images_are_not_tiled() -> None:
    assert tile_regions(TILE_MIN_SIDE - 1, 2000, 2) == []


def test_a_mirrored_box_comes_back_to_its_place() -> None:
    cand = Candidate(np.array([10.0, 5.0, 40.0, 25.0]), 0.7, "dog")
    back = _unflip(cand, 100)
    assert back.box.tolist() == [60.0, 5.0, 90.0, 25.0] and back.score == 0.7
    assert _unflip(back, 100).box.tolist() == cand.box.tolist()


def test_a_tile_box_inside_a_whole_image_box_of_its_class_is_a_piece() -> None:
    whole = [Candidate(np.array([100.0, 100.0, 300.0, 400.0]), 0.9, "dog")]
    head = Candidate(np.array([110.0, 100.0, 250.0, 200.0]), 0.8, "dog")
    assert _piece_of(head, whole)
    assert not _piece_of(Candidate(head.box, 0.8, "cat"), whole)  # another class
    assert not _piece_of(Candidate(np.array([320.0, 100.0, 360.0, 150.0]), 0.6, "dog"), whole)


def test_a_grid_of_one_is_refused() -> None:
    with pytest.raises(ValueError, match="tiles"):
        SSDCocoDetector(tiles=1)
