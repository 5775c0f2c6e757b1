"""SSD-MobileNet-v2 COCO detector on the dev photos, with asserted outcomes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from vpagent.images import load_image
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.types import Detection

pytest.importorskip("cv2")
pytestmark = pytest.mark.slow

from vpagent.tools.offline.detector import SSDCocoDetector  # noqa: E402


@pytest.fixture(scope="module")
def detector() -> SSDCocoDetector:
    return SSDCocoDetector()


@pytest.fixture(scope="module")
def photos(images_dir: Path) -> dict[str, np.ndarray]:
    return {path.stem: load_image(path) for path in sorted(images_dir.glob("*.jpg"))}


def _boxes(detections: list[Detection]) -> np.ndarray:
    return np.array([d.box.as_list() for d in detections])


def test_construction_loads_nothing() -> None:
    fresh = SSDCocoDetector()
    assert not fresh._net.loaded
    info = fresh.info()
    assert info.backend == "ssd-coco" and info.device == "cpu" and not info.stand_in
    assert info.weights and info.weights.endswith("frozen_inference_graph.pb")
    assert not fresh._net.loaded


def test_two_dogs_are_exactly_two_dogs(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    dogs = detector.detect(photos["two_dogs"], ["dog"])
    assert len(dogs) == 2
    assert all(d.label == "dog" and d.score > 0.8 for d in dogs)
    left, right = sorted(dogs, key=lambda d: d.box.x0)
    assert left.box.x1 < right.box.x1  # two different animals side by side, not one merged box


def test_bus_and_at_least_three_people(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    found = detector.detect(photos["bus"], ["bus", "people"])
    buses = [d for d in found if d.label == "bus"]
    people = [d for d in found if d.label == "people"]
    assert len(buses) == 1 and buses[0].box.area > 0.3 * 810 * 1080
    assert len(people) >= 3
    assert found == sorted(found, key=lambda d: -d.score)


def test_synonyms_and_plurals_reach_the_same_boxes(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    dogs = detector.detect(photos["two_dogs"], ["dog"])
    puppies = detector.detect(photos["two_dogs"], ["puppies"])
    assert {d.label for d in puppies} == {"puppies"}
    np.testing.assert_allclose(_boxes(puppies), _boxes(dogs))
    men = detector.detect(photos["zidane"], ["men"])
    assert len(men) == 2


def test_animal_check_fixes_a_bulldog_taken_for_a_cat(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    assert len(detector.detect(photos["dog_bowl"], ["dog"])) == 1
    assert detector.detect(photos["dog_bowl"], ["cat"]) == []
    plain = SSDCocoDetector(check_animals=False, zoom=False)
    assert [d.label for d in plain.detect(photos["dog_bowl"], ["cat"])] == ["cat"]


def test_nonsense_names_are_refused(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CannotAnswer, match="COCO detector stand-in"):
        detector.detect(photos["bus"], ["quasar"])


def test_detect_all_labels_with_coco_names(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    labels = sorted(d.label for d in detector.detect_all(photos["truck"]))
    assert labels == ["truck"]
    assert detector.detect_all(photos["airport"]) == []  # aerial view: nothing, not nonsense


def test_batched_detection_equals_unbatched(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    names = ["two_dogs", "bus", "zidane", "truck", "dog_bowl"]
    queries = [["dog"], ["bus", "person"], ["person"], ["truck", "car"], ["dog", "bowl"]]
    batched = detector.detect_batch([photos[n] for n in names], queries)
    for name, query, batch_result in zip(names, queries, batched, strict=True):
        single = SSDCocoDetector().detect(photos[name], query)  # its own passes, none reused
        assert [d.label for d in single] == [d.label for d in batch_result]
        np.testing.assert_allclose(_boxes(single), _boxes(batch_result), atol=1.0)
        np.testing.assert_allclose(
            [d.score for d in single], [d.score for d in batch_result], atol=1e-3
        )


def test_a_photos_second_query_reuses_its_network_passes(photos) -> None:  # type: ignore[no-untyped-def]
    detector = SSDCocoDetector()
    passes: list[int] = []
    run_network = detector._run_network

    def counted(images: list[np.ndarray]) -> list:  # type: ignore[type-arg]
        passes.append(len(images))
        return run_network(images)

    detector._run_network = counted  # type: ignore[method-assign]
    dogs = detector.detect(photos["dog_bowl"], ["dog"])
    first = sum(passes)
    assert first >= 1  # the whole photo, and its tiles and zoom region
    bowls = detector.detect(photos["dog_bowl"], ["bowl"])
    everything = detector.detect_all(photos["dog_bowl"])
    assert sum(passes) - first <= 1  # at most a zoom region of the bowl not seen before
    assert {d.label for d in everything} >= {"dog", "bowl"}
    fresh = SSDCocoDetector()  # reused passes give what fresh ones would
    assert dogs == fresh.detect(photos["dog_bowl"], ["dog"])
    assert bowls == SSDCocoDetector().detect(photos["dog_bowl"], ["bowl"])
    assert everything == SSDCocoDetector().detect_all(photos["dog_bowl"])
    detector.detect(photos["bus"], ["bus"])
    assert sum(passes) > first + 1  # another photo is another pass


def test_concurrent_calls_are_safe(photos) -> None:  # type: ignore[no-untyped-def]
    expected = len(SSDCocoDetector().detect(photos["bus"], ["person"]))
    detector = SSDCocoDetector()  # nothing remembered: the four threads run the network
    counts: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            counts.append(len(detector.detect(photos["bus"], ["person"])))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and counts == [expected] * 4


def test_grayscale_and_empty_inputs(detector: SSDCocoDetector, photos) -> None:  # type: ignore[no-untyped-def]
    gray = photos["truck"].mean(axis=2).astype(np.uint8)
    assert [d.label for d in detector.detect(gray, ["truck"])] == ["truck"]
    assert detector.detect_batch([], []) == []
    blank = np.zeros((64, 64, 3), dtype=np.uint8)
    assert detector.detect(blank, ["person"]) == []


def test_search_finds_at_least_what_detect_finds_and_scores_lower(
    detector: SSDCocoDetector, data_dir: Path
) -> None:
    from vpagent.tools.offline.detector import SEARCH_THRESHOLD

    crowd = load_image(data_dir / "coco128" / "images" / "000000000257.jpg")
    found = detector.detect(crowd, ["person"])
    searched = detector.search(crowd, "people")
    assert {d.label for d in searched} == {"people"}
    assert [d.score for d in searched] == sorted((d.score for d in searched), reverse=True)
    assert len(searched) >= len(found) and min(d.score for d in searched) >= SEARCH_THRESHOLD
    assert searched[0].score >= found[0].score - 1e-6
