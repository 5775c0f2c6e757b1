"""YoloDetector and YoloWorldDetector on untrained ultralytics models saved as .pt files.

YOLO-World embeds new class names with ultralytics' CLIP text encoder, which needs the ``clip``
package and ViT-B/32 weights that these machines do not have. What is tested offline: loading,
detection with the vocabulary saved in the checkpoint, the ModelUnavailable raised for a new
name, and — with a stand-in text encoder put where ultralytics imports it from — that new
names go through ultralytics' real ``set_classes``. Real CLIP embeddings are untested here.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("ultralytics")

from tests.fixtures.hf_tiny import (
    build_yolo,
    build_yolo_world,
    coco_names,
    fake_text_model_module,
    test_image,
)
from vpagent.tools.errors import CannotAnswer, ModelUnavailable
from vpagent.tools.hf.yolo import YoloDetector, YoloWorldDetector, match_class, normalize
from vpagent.tools.types import Detection

pytestmark = pytest.mark.hf

IMAGES = [test_image(), test_image(height=30, width=50, seed=1), test_image(height=60, seed=2)]
SMALL = {"conf": 0.0, "imgsz": 128, "max_det": 20}  # untrained: keep every box, tiny input


@pytest.fixture(scope="module")
def yolo(tmp_path_factory):
    return YoloDetector(
        str(build_yolo(tmp_path_factory.mktemp("yolo") / "yolo.pt")), device="cpu", **SMALL
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    path = build_yolo_world(
        tmp_path_factory.mktemp("world") / "world.pt", ["cat", "dog", "red car"]
    )
    return YoloWorldDetector(str(path), device="cpu", **SMALL)


def _check(detections, names, image):
    height, width = image.shape[:2]
    for d in detections:
        assert isinstance(d, Detection) and d.label in names and 0.0 <= d.score <= 1.0
        assert 0 <= d.box.x0 < d.box.x1 <= width and 0 <= d.box.y0 < d.box.y1 <= height


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("person", "person"),
        ("People", "person"),
        ("two dogs", None),
        ("dogs", "dog"),
        ("the buses", "bus"),
        ("sofa", "couch"),
        ("TV monitor", "tv"),
        ("cell phones", "cell phone"),
        ("unicorn", None),
    ],
)
def test_query_names_map_to_coco_classes(yolo, query, expected):
    class_id = yolo.class_for(query)
    assert (None if class_id is None else yolo._yolo.names[class_id]) == expected


def test_aliases_extend_the_table():
    classes = {"dog": 16}
    assert match_class("pup", classes, {"pup": "dog"}) == 16
    assert normalize("  A Red-Car ") == "red car"


def test_detect_labels_are_query_names(yolo):
    every_class = list(coco_names().values())  # an untrained model's top class is arbitrary
    found = yolo.detect(IMAGES[0], every_class)
    assert found, "conf=0 keeps the untrained model's boxes"
    _check(found, every_class, IMAGES[0])
    _check(yolo.detect(IMAGES[0], ["people", "dog"]), ["people", "dog"], IMAGES[0])


def test_unknown_name_cannot_be_answered(yolo):
    with pytest.raises(CannotAnswer, match="unicorn"):
        yolo.detect(IMAGES[0], ["dog", "unicorn"])
    lenient = YoloDetector(yolo.model, device="cpu", unknown="ignore", **SMALL)
    assert lenient.detect(IMAGES[0], ["unicorn"]) == []


def _same(batched, single):
    assert [d.label for d in batched] == [d.label for d in single]
    np.testing.assert_allclose(
        [d.box.as_list() for d in batched], [d.box.as_list() for d in single], atol=1e-2
    )
    np.testing.assert_allclose([d.score for d in batched], [d.score for d in single], atol=1e-4)


def test_yolo_batched_equals_unbatched(yolo):
    names = [["person", "car"], ["dog"], ["cat", "person"]]
    batched = yolo.detect_batch(IMAGES, names)
    for image, per, got in zip(IMAGES, names, batched, strict=True):
        _check(got, per, image)
        _same(got, yolo.detect(image, per))


def test_world_saved_vocabulary_works_offline(world):
    found = world.detect(IMAGES[0], ["red car", "cat", "dog"])  # the whole saved vocabulary
    assert found
    _check(found, ["red car", "cat", "dog"], IMAGES[0])
    assert world.info().backend == "yolo-world"


def test_world_batched_equals_unbatched(world):
    names = [["cat"], ["red car", "dog"], ["dog"]]
    batched = world.detect_batch(IMAGES, names)
    for image, per, got in zip(IMAGES, names, batched, strict=True):
        _check(got, per, image)
        _same(got, world.detect(image, per))


def test_world_new_name_without_clip_is_unavailable(world, monkeypatch):
    monkeypatch.setitem(sys.modules, "ultralytics.nn.text_model", None)  # import fails, as offline
    with pytest.raises(ModelUnavailable, match="CLIP"):
        world.detect(IMAGES[0], ["unicorn"])


def test_world_new_names_go_through_set_classes(tmp_path, monkeypatch):
    path = build_yolo_world(tmp_path / "w.pt", ["cat"])
    detector = YoloWorldDetector(str(path), device="cpu", **SMALL)
    monkeypatch.setitem(sys.modules, "ultralytics.nn.text_model", fake_text_model_module())
    found = detector.detect_batch(IMAGES[:2], [["zebra"], ["kite", "cat"]])
    assert sorted(detector._class_table()) == ["cat", "kite", "zebra"]
    for image, per, got in zip(IMAGES[:2], [["zebra"], ["kite", "cat"]], found, strict=True):
        _check(got, per, image)
