"""Pixel colour naming on synthetic patches and on the dev photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.offline.colors import (
    PALETTE,
    canonical,
    color_distribution,
    has_color,
    name_color,
    palette_names,
    salience_for,
)
from vpagent.tools.types import Box

# Boxes the offline detector reports for these photos (tests/test_offline_detector.py).
TRUCK_BOX = Box.of([104, 278, 1722, 858])
BUS_BOX = Box.of([5, 213, 810, 758])
BLACK_DOG_BOX = Box.of([552, 218, 769, 592])


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((0, 0, 0), "black"),
        ((250, 250, 250), "white"),
        ((128, 128, 128), "gray"),
        ((220, 20, 30), "red"),
        ((250, 140, 0), "orange"),
        ((240, 220, 20), "yellow"),
        ((30, 160, 40), "green"),
        ((20, 60, 220), "blue"),
        ((120, 30, 170), "purple"),
        ((250, 150, 200), "pink"),
        ((110, 60, 20), "brown"),
    ],
)
def test_flat_patches(rgb: tuple[int, int, int], name: str) -> None:
    patch = np.zeros((40, 40, 3), dtype=np.uint8)
    patch[:] = rgb
    assert name_color(patch) == name


def test_distribution_sums_to_one_and_covers_the_palette() -> None:
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    image[:, 50:] = (20, 60, 220)
    shares = color_distribution(image)
    assert set(shares) == set(PALETTE)
    assert sum(shares.values()) == pytest.approx(1.0)


def test_box_ignores_background_around_it() -> None:
    image = np.zeros((200, 200, 3), dtype=np.uint8)
    image[:] = (220, 20, 30)  # red wall
    image[50:150, 50:150] = (20, 60, 220)  # blue object
    loose = Box.of([40, 40, 160, 160])  # a detector box that includes some wall
    assert name_color(image, loose) == "blue"
    assert not has_color(image, "red", loose)


def test_mask_restricts_pixels() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[:] = (30, 160, 40)
    image[:, :30] = (250, 140, 0)
    mask = np.zeros((100, 100), dtype=bool)
    mask[:, :30] = True
    assert name_color(image) == "green"
    assert name_color(image, mask=mask) == "orange"


def test_colour_words() -> None:
    assert canonical("grey") == "gray" and canonical("Silver") == "gray"
    assert palette_names("golden") == ("yellow", "orange")
    assert canonical("plaid") is None
    assert salience_for("the buses")["black"] < salience_for("dog")["black"]
    with pytest.raises(ValueError, match="not a colour word"):
        has_color(np.zeros((4, 4, 3), np.uint8), "plaid")


def test_white_truck_and_blue_bus(images_dir: Path) -> None:
    truck = load_image(images_dir / "truck.jpg")
    bus = load_image(images_dir / "bus.jpg")
    assert name_color(truck, TRUCK_BOX, object_name="truck") == "white"
    assert name_color(bus, BUS_BOX, object_name="bus") == "blue"
    assert has_color(bus, "white", BUS_BOX, object_name="bus") is False
    assert has_color(truck, "red", TRUCK_BOX, object_name="truck") is False  # the wall behind


def test_black_dog(images_dir: Path) -> None:
    dogs = load_image(images_dir / "two_dogs.jpg")
    assert name_color(dogs, BLACK_DOG_BOX, object_name="dog") == "black"


def test_an_objects_mask_does_not_depend_on_earlier_cuts(images_dir: Path) -> None:
    import cv2

    from vpagent.tools.offline.colors import object_mask

    bus = load_image(images_dir / "bus.jpg")
    crop = bus[213:758, 5:810]  # BUS_BOX
    first = object_mask(crop)
    for _ in range(3):  # other cuts and other draws advance OpenCV's random state
        object_mask(load_image(images_dir / "zidane.jpg")[100:500, 100:500])
        cv2.randu(np.empty((64, 1)), 0.0, 1.0)
        assert np.array_equal(object_mask(crop), first)
