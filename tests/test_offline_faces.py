"""Haar face detector on the dev photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image

pytest.importorskip("cv2")
pytestmark = pytest.mark.slow

from vpagent.tools.offline.faces import HaarFaceDetector  # noqa: E402


@pytest.fixture(scope="module")
def faces() -> HaarFaceDetector:
    return HaarFaceDetector()


def test_finds_the_frontal_face_in_zidane(faces: HaarFaceDetector, images_dir: Path) -> None:
    image = load_image(images_dir / "zidane.jpg")
    found = faces.detect_faces(image)
    assert len(found) >= 1
    face = found[0]
    assert face.label == "face" and face.score > 0.5
    # Ancelotti faces the camera, top right; (Zidane, in profile, is beyond a frontal cascade).
    assert face.box.x0 > 0.6 * image.shape[1] and face.box.y1 < 0.5 * image.shape[0]


def test_two_faces_on_the_bus_photo(faces: HaarFaceDetector, images_dir: Path) -> None:
    assert len(faces.detect_faces(load_image(images_dir / "bus.jpg"))) == 2


@pytest.mark.parametrize("photo", ["two_dogs", "truck", "groceries", "boats"])
def test_no_faces_where_there_are_none(
    faces: HaarFaceDetector, images_dir: Path, photo: str
) -> None:
    assert faces.detect_faces(load_image(images_dir / f"{photo}.jpg")) == []


def test_blank_and_grayscale(faces: HaarFaceDetector, images_dir: Path) -> None:
    assert faces.detect_faces(np.zeros((50, 50, 3), np.uint8)) == []
    gray = load_image(images_dir / "zidane.jpg").mean(axis=2).astype(np.uint8)
    assert len(faces.detect_faces(gray)) >= 1  # no skin check without colour


def test_info() -> None:
    info = HaarFaceDetector().info()
    assert info.backend == "haar" and info.weights and info.weights.endswith(".xml")
