"""The relation helpers of the program API: their geometry on hand-made boxes."""

from __future__ import annotations

from typing import Any

import pytest

from vpagent.tools.image_patch import ImagePatch, api_spec

HEIGHT = 480


def ground_depth(tool: str, args: dict[str, Any]) -> Any:
    """A level-ground depth: the lower a region's centre, the closer (smaller)."""
    assert tool == "compute_depth"
    _, top, _, bottom = args["box"]
    return 1.0 - (top + bottom) / 2 / HEIGHT


def patch(left: float, top: float, right: float, bottom: float) -> ImagePatch:
    return ImagePatch(ground_depth, "img", (left, top, right, bottom))


CUP = patch(100, 200, 140, 250)
LAPTOP = patch(150, 180, 300, 260)  # 10 px right of the cup, same rows
FAR_BOOK = patch(500, 200, 540, 250)  # same rows, far away
TABLE = patch(50, 240, 400, 420)
CAT_UNDER = patch(150, 350, 250, 420)
LAMP_ABOVE = patch(150, 20, 200, 120)  # over the table, but far above it


def test_next_to_needs_shared_rows_and_a_small_gap() -> None:
    assert CUP.next_to(LAPTOP) and LAPTOP.next_to(CUP) and CUP.beside(LAPTOP)
    assert not CUP.next_to(FAR_BOOK)
    assert not LAMP_ABOVE.next_to(TABLE)  # no shared rows
    assert not patch(160, 200, 180, 220).next_to(LAPTOP)  # inside, not beside


def test_touching_is_overlap_or_a_hairline_gap() -> None:
    assert CUP.touching(TABLE)  # the cup's bottom overlaps the table top
    assert patch(0, 0, 100, 100).touching(patch(101, 0, 200, 100))
    assert not CUP.touching(LAPTOP)  # 10 px apart, 25% of the cup's size


def test_on_means_resting_on_the_upper_part() -> None:
    assert CUP.on(TABLE) and CUP.on_top_of(TABLE)
    assert not TABLE.on(CUP)
    assert not LAMP_ABOVE.on(TABLE)  # above, but not resting on it
    assert not CAT_UNDER.on(TABLE)
    assert not patch(420, 200, 470, 250).on(TABLE)  # beside the table, not over it


def test_under_means_lower_within_the_columns() -> None:
    assert CAT_UNDER.under(TABLE) and CAT_UNDER.beneath(TABLE)
    assert not CUP.under(TABLE)
    assert not TABLE.under(LAMP_ABOVE) or LAMP_ABOVE.vertical_center < TABLE.vertical_center
    assert not patch(450, 350, 500, 420).under(TABLE)  # lower, but outside its columns


def test_in_front_of_and_behind_use_the_depth_of_the_lower_part() -> None:
    near = patch(100, 300, 200, 470)
    far = patch(300, 100, 360, 200)
    assert near.in_front_of(far) and far.behind(near)
    assert not far.in_front_of(near) and not near.behind(far)
    tall = patch(300, 50, 360, 470)  # its centre is higher than small's, but its foot is lower
    small = patch(100, 300, 150, 400)
    assert tall.vertical_center < small.vertical_center and tall.in_front_of(small)
    twin = patch(300, 300, 400, 470)  # near's box moved sideways: neither is in front
    assert not twin.in_front_of(near) and not twin.behind(near)


def test_contains_is_inside_reversed() -> None:
    assert TABLE.contains(CAT_UNDER) and not CAT_UNDER.contains(TABLE)
    assert not TABLE.contains(LAMP_ABOVE)


@pytest.mark.parametrize(
    "name", ["next_to", "touching", "on", "under", "in_front_of", "behind", "contains", "locate"]
)
def test_the_spec_documents_each_relation_once(name: str) -> None:
    spec = api_spec()
    assert spec.count(f"def {name}(") == 1
    assert "def beside(" not in spec and "beside" in spec  # aliases are named, not repeated


def test_locate_asks_for_a_thorough_search_and_returns_the_best() -> None:
    calls: list[dict[str, Any]] = []

    def host(tool: str, args: dict[str, Any]) -> Any:
        calls.append(args)
        return [
            {"box": [10, 10, 50, 50], "score": 0.31, "label": "bowl"},
            {"box": [60, 10, 90, 50], "score": 0.2, "label": "bowl"},
        ]

    best = ImagePatch(host, "img", (0, 0, 100, 100)).locate("bowl")
    assert calls[0]["thorough"] is True and calls[0]["name"] == "bowl"
    assert (best.left, best.score, best.label) == (10, 0.31, "bowl")
