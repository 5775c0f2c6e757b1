"""Free-form object names -> COCO classes for the offline detector, or an honest refusal."""

from __future__ import annotations

import numpy as np
import pytest

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.offline.coco_names import (
    COCO_CLASSES,
    COCO_TF_IDS,
    CocoNameMapper,
    classes_named_in,
    exact_classes,
    normalise,
    singular,
)


@pytest.mark.parametrize(
    ("name", "classes"),
    [
        ("dog", ("dog",)),
        ("dogs", ("dog",)),
        ("the two dogs", ("dog",)),
        ("puppies", ("dog",)),
        ("man", ("person",)),
        ("women", ("person",)),
        ("men", ("person",)),
        ("people", ("person",)),
        ("child", ("person",)),
        ("boys", ("person",)),
        ("girl", ("person",)),
        ("tennis player", ("person",)),
        ("man in a white shirt", ("person",)),
        ("automobile", ("car",)),
        ("red cars", ("car",)),
        ("cars parked on the street", ("car",)),
        ("airplane", ("airplane",)),
        ("plane", ("airplane",)),
        ("aeroplanes", ("airplane",)),
        ("ship", ("boat",)),
        ("yachts", ("boat",)),
        ("buses", ("bus",)),
        ("pickup truck", ("truck",)),
        ("hot dog", ("hot dog",)),
        ("hot dogs", ("hot dog",)),
        ("traffic light", ("traffic light",)),
        ("sofa", ("couch",)),
        ("cellphones", ("cell phone",)),
        ("wine glasses", ("wine glass",)),
        ("knives", ("knife",)),
        ("pets", ("cat", "dog")),
    ],
)
def test_synonyms_and_plurals_map_without_embeddings(name: str, classes: tuple[str, ...]) -> None:
    assert exact_classes(name) == classes


def test_group_words_cover_several_classes() -> None:
    vehicles = exact_classes("vehicles")
    assert vehicles is not None and {"car", "bus", "truck", "boat"} <= set(vehicles)
    animals = exact_classes("animal")
    assert animals is not None and {"dog", "cat", "horse"} <= set(animals)


def test_helpers() -> None:
    assert singular("buses") == "bus" and singular("ponies") == "pony" and singular("bus") == "bus"
    assert normalise("The big red car next to the tree") == ["car"]
    assert len(COCO_CLASSES) == 80 and COCO_TF_IDS[18] == "dog"


def _no_embedding(texts: list[str]) -> np.ndarray:
    raise AssertionError(f"embedding should not be needed for {texts}")


@pytest.mark.parametrize(
    ("sentence", "classes"),
    [
        ("How many dogs are there?", {"dog"}),
        ("Are there plants in the street?", {"potted plant"}),
        ("Are the wine glasses full?", {"wine glass"}),
        ("Is there a hot dog on the plate?", {"hot dog"}),  # not a dog
        ("Is the man left of the women?", {"person"}),
        ("Is the cup to the left of the laptop?", {"cup", "laptop"}),
        ("What colour is the sky?", set()),
    ],
)
def test_classes_named_in_a_sentence(sentence: str, classes: set[str]) -> None:
    assert classes_named_in(sentence) == classes


def test_exact_names_never_touch_minilm() -> None:
    mapper = CocoNameMapper(embed=_no_embedding)
    assert mapper.resolve("Puppies") == ("dog",)
    assert mapper.resolve("aeroplane") == ("airplane",)


@pytest.mark.parametrize("name", ["face", "trees", "sky", "building"])
def test_non_coco_things_are_refused_without_minilm(name: str) -> None:
    mapper = CocoNameMapper(embed=_no_embedding)
    with pytest.raises(CannotAnswer, match="COCO detector stand-in"):
        mapper.resolve(name)


def _fake_embed(table: dict[str, list[float]]):  # type: ignore[no-untyped-def]
    def embed(texts: list[str]) -> np.ndarray:
        rows = [np.array(table.get(t, [0.0, 1.0, 0.0]), dtype=np.float32) for t in texts]
        return np.stack([r / np.linalg.norm(r) for r in rows])

    return embed


def test_similarity_fallback_uses_threshold() -> None:
    embed = _fake_embed({"pupper": [1.0, 0.1, 0.0], "pup": [1.0, 0.0, 0.0], "nebula": [0, 0, 1.0]})
    mapper = CocoNameMapper(embed=embed, threshold=0.66)
    assert mapper.resolve("pupper") == ("dog",)
    with pytest.raises(CannotAnswer, match=r"'nebula'.*COCO detector stand-in"):
        mapper.resolve("nebula")


@pytest.mark.slow
def test_minilm_maps_unlisted_words_and_refuses_nonsense() -> None:
    pytest.importorskip("sentence_transformers")
    mapper = CocoNameMapper()
    assert mapper.resolve("toddlers") == ("person",)
    assert mapper.resolve("banana bunch") == ("banana",)
    with pytest.raises(CannotAnswer, match="cannot detect 'quasar' with the COCO detector"):
        mapper.resolve("quasar")
    with pytest.raises(CannotAnswer):
        mapper.resolve("galaxy")
