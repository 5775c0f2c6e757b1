"""Augmented pictures and the extra question families: labels recomputed, never carried blindly."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from tests.conftest import DATA_DIR
from vpagent.cli import app
from vpagent.distill.augment import (
    QUESTIONS_FILE,
    augment,
    crop_scene,
    flip_row,
    mirror_scene,
    swap_sides,
)
from vpagent.distill.export import export_dataset
from vpagent.distill.questions import (
    ALL_FAMILIES,
    FAMILY_FUNCTIONS,
    Rules,
    Scene,
    Thing,
    generate,
    write_jsonl,
)
from vpagent.evaluation.datasets import EvalItem, load_dataset
from vpagent.student.records import SFTRecord

GROUP = {"dog": "animal", "cat": "animal", "zebra": "animal", "car": "vehicle", "bus": "vehicle"}
NAMES = sorted(["dog", "cat", "zebra", "car", "bus", "cup", "bowl", "person", "clock"])
W, H = 400, 300


def thing(name: str, box: tuple[float, float, float, float], **kwargs: object) -> Thing:
    """A clear, whole instance (mask area 80% of its box) unless ``kwargs`` say otherwise."""
    box_area = (box[2] - box[0]) * (box[3] - box[1])
    fields = {"area": 0.8 * box_area, "clear": True, "crowd": False, **kwargs}
    return Thing(name, box, box_area=box_area, group=GROUP.get(name), **fields)  # type: ignore[arg-type]


def scene(*things: Thing) -> Scene:
    return Scene(W, H, list(things), NAMES, Rules())


def asked(
    picture: Scene, families: tuple[str, ...] = ALL_FAMILIES, seeds: int = 40
) -> dict[str, str]:
    """question text -> answer over many seeds (so every random wording turns up)."""
    found: dict[str, str] = {}
    for seed in range(seeds):
        rng = random.Random(seed)
        for family in families:
            for group in FAMILY_FUNCTIONS[family](picture, rng):
                for question in group:
                    assert found.setdefault(question.question, question.answer) == question.answer
    return found


# A unique bus; a dog, the only thing above it; two cups, the only things left of the dog; a car.
TWO_HOP = [
    thing("bus", (150, 200, 250, 280)),
    thing("dog", (170, 100, 230, 150)),
    thing("cup", (20, 250, 60, 290)),
    thing("cup", (80, 240, 110, 270)),
    thing("car", (300, 240, 380, 290)),
]


def test_flip_swaps_left_and_right_in_question_and_answer() -> None:
    assert swap_sides("Is the dog to the left of the car?") == "Is the dog to the right of the car?"
    choice = "Is the dog to the left or to the right of the car?"
    assert swap_sides(choice) == choice and swap_sides("above") == "above"
    assert swap_sides("What is to the right of the thing left of it?") == (
        "What is to the left of the thing right of it?"
    )
    item = EvalItem(id="a-04", image=Path("a.jpg"), question=choice, answers=["left"],
                    type="spatial", license="CC BY")  # fmt: skip
    row = flip_row(item, "images/a-flip.jpg", "a.jpg")
    assert row == {
        "id": "a-04-flip", "image": "images/a-flip.jpg", "question": choice, "answer": "right",
        "type": "spatial", "license": "CC BY", "source_image": "a.jpg", "augmentation": "flip",
    }  # fmt: skip


def test_the_text_swap_agrees_with_questions_from_mirrored_boxes() -> None:
    families = ("spatial", "object", "compose", "two_hop")
    extra = [thing("clock", (300, 20, 340, 60)), thing("cat", (10, 20, 60, 80))]
    for things in (TWO_HOP, TWO_HOP + extra):
        original = asked(scene(*things), families, seeds=200)
        mirrored = asked(mirror_scene(scene(*things)), families, seeds=200)
        swapped = {swap_sides(text): swap_sides(answer) for text, answer in original.items()}
        assert swapped == mirrored
        assert {"left", "right", "yes", "no"} <= set(mirrored.values())
    two_hop = asked(mirror_scene(scene(*TWO_HOP)), ("two_hop",))
    assert two_hop["What is to the right of the thing above the bus?"] == "cup"


def test_a_crop_recounts_and_drops_what_it_cuts_away() -> None:
    dogs = [thing("dog", (x, 10, x + 50, 60)) for x in (10, 100, 200)]
    kept = crop_scene(scene(*dogs, thing("car", (300, 200, 390, 290))), (0, 0, 165, 200), 0.7)
    questions = asked(kept)
    assert questions["How many dogs are there?"] == "2"
    assert questions["How many animals are there?"] == "2"
    assert questions["How many vehicles are there?"] == "0"  # the car is outside: gone
    assert questions["Is there a car in the picture?"] == "no"
    assert (kept.width, kept.height) == (165, 200)

    cut = crop_scene(scene(*dogs), (0, 0, 215, 200), 0.7)  # the third dog: 30% visible
    assert [t.cut for t in cut.things] == [False, False, True]
    for text, answer in asked(cut).items():
        assert not ("dog" in text and text.startswith(("How many", "Are there more")))
        assert "animals" not in text and answer != "dog"
    only_cut = crop_scene(scene(*dogs[2:], thing("cat", (10, 10, 60, 60))), (0, 0, 215, 200), 0.7)
    questions = asked(only_cut)
    assert questions["How many cats are there?"] == "1"
    assert not [text for text in questions if "dog" in text]  # neither a yes nor a "no"


def test_a_partly_cut_object_is_counted_but_never_compared_by_size() -> None:
    big = thing("bus", (0, 0, 300, 200))
    cropped = crop_scene(scene(big, thing("cup", (320, 250, 340, 270))), (20, 0, 400, 300), 0.7)
    questions = asked(cropped)
    assert cropped.things[0].cut and questions["How many buses are there?"] == "1"
    assert not [text for text in questions if "takes up" in text]
    whole = asked(scene(big, thing("cup", (320, 250, 340, 270))))
    assert whole["Which object takes up the most of the picture?"] == "bus"


def _answers(picture: Scene, family: str) -> dict[str, str]:
    return asked(picture, (family,), seeds=200)


def test_count_group() -> None:
    animals = [thing("dog", (10, 10, 60, 60)), thing("dog", (70, 10, 120, 60)),
               thing("cat", (130, 10, 180, 60)), thing("car", (200, 100, 300, 200))]  # fmt: skip
    assert _answers(scene(*animals), "count_group") == {
        "How many animals are there?": "3", "How many vehicles are there?": "1",
    }  # fmt: skip
    faint = thing("zebra", (390, 290, 392, 292), clear=False)
    assert _answers(scene(*animals, faint), "count_group") == {"How many vehicles are there?": "1"}
    assert _answers(scene(faint), "count_group") == {"How many vehicles are there?": "0"}


def test_exist_both() -> None:
    questions = _answers(scene(thing("dog", (10, 10, 60, 60)), thing("car", (200, 10, 300, 90))),
                         "exist_both")  # fmt: skip
    yes = [text for text, answer in questions.items() if answer == "yes"]
    assert set(yes) == {"Is there both a dog and a car in the picture?",
                        "Is there both a car and a dog in the picture?"}  # fmt: skip
    for text, answer in questions.items():
        if answer == "no":  # one of the two, and a category with no annotation at all
            named = [name for name in NAMES if f" {name} " in text or f" {name}?" in text]
            assert len(named) == 2 and len({"dog", "car"} & set(named)) == 1, text
    faint = thing("cup", (390, 290, 392, 292), clear=False)
    assert _answers(scene(thing("dog", (10, 10, 60, 60)), faint), "exist_both") == {}


def test_compare_count() -> None:
    things = [thing("dog", (10, 10, 60, 60)), thing("dog", (70, 10, 120, 60)),
              thing("car", (200, 100, 300, 200))]  # fmt: skip
    questions = _answers(scene(*things), "compare_count")
    assert questions["Are there more dogs than cars?"] == "yes"
    assert questions["Are there more cars than dogs?"] == "no"
    assert questions["Are there more dogs than buses?"] == "yes"
    assert questions["Are there more buses than cars?"] == "no"
    faint = thing("dog", (390, 290, 392, 292), clear=False)
    assert not [t for t in _answers(scene(*things, faint), "compare_count") if "dogs" in t]


def test_largest() -> None:
    bus, cup = thing("bus", (0, 0, 300, 200)), thing("cup", (320, 250, 340, 270))
    assert _answers(scene(bus, cup), "largest") == {
        "Which object takes up the most of the picture?": "bus"
    }
    assert _answers(scene(bus, thing("car", (250, 0, 400, 250))), "largest") == {}  # too close
    assert _answers(scene(bus, cup, thing("cup", (380, 290, 381, 291), clear=False)),
                    "largest") == {}  # fmt: skip
    assert _answers(scene(bus), "largest") == {}


def test_two_hop() -> None:
    questions = _answers(scene(*TWO_HOP), "two_hop")
    assert questions["What is to the left of the thing above the bus?"] == "cup"
    assert all(answer != "bus" for answer in questions.values())  # never the anchor itself
    second = thing("clock", (260, 20, 300, 60))  # now two things are above the bus
    crowded = _answers(scene(*TWO_HOP, second), "two_hop")
    assert not [text for text in crowded if "the thing above the bus" in text]


def make_photos(root: Path, n: int = 6) -> Path:
    """``n`` distinct photos: three dogs in a row, a car below, a cup; COCO instances file."""
    (root / "images").mkdir(parents=True)
    categories = ["dog", "car", "cup"]
    images, annotations = [], []
    for i in range(n):
        picture = Image.new("RGB", (W, H), (30 * i, 90, 160))
        draw = ImageDraw.Draw(picture)
        boxes = [("dog", [20 + 120 * k, 20 + 5 * i, 60, 60]) for k in range(3)]
        boxes += [("car", [150, 200, 120, 80]), ("cup", [20 + 10 * i, 220, 30, 40])]
        for _, (x, y, w, h) in boxes:
            draw.rectangle((x, y, x + w, y + h), fill=(200, 40 * i % 255, 20))
        picture.save(root / "images" / f"p{i}.jpg", quality=95)
        images.append({"id": i + 1, "file_name": f"p{i}.jpg", "width": W, "height": H,
                       "license": 1})  # fmt: skip
        for name, box in boxes:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1,
                                "category_id": categories.index(name) + 1, "bbox": box,
                                "area": box[2] * box[3] * 0.8})  # fmt: skip
    coco = {
        "info": {"description": "toy"},
        "licenses": [{"id": 1, "name": "Attribution License", "url": "http://example.org/by"}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": name, "supercategory": GROUP.get(name, "kitchen")}
            for i, name in enumerate(categories, 1)
        ],
    }
    (root / "instances.json").write_text(json.dumps(coco))
    return root / "instances.json"


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    """The annotations and their questions file (the default six families)."""
    coco = make_photos(tmp_path / "coco")
    questions = tmp_path / "q.jsonl"
    write_jsonl(generate(coco, questions, per_image=12)[0], questions)
    return coco, questions


def _augment(coco: Path, questions: Path, out: Path, seed: int = 0) -> list[dict[str, object]]:
    rows, _ = augment(coco, questions, out, seed=seed)
    write_jsonl(rows, out / QUESTIONS_FILE)
    return rows


def test_augment_writes_pictures_rows_and_source_photos(
    photos: tuple[Path, Path], tmp_path: Path
) -> None:
    coco, questions = photos
    rows, report = augment(coco, questions, tmp_path / "aug", crops=2)
    originals = load_dataset(questions)
    flips = [r for r in rows if r["augmentation"] == "flip"]
    assert len(flips) == len(originals) == sum(report.per_source["flip"].values())
    written = {f"images/{path.name}" for path in (tmp_path / "aug" / "images").iterdir()}
    assert written == {row["image"] for row in rows if row["augmentation"] != "none"}
    assert report.images["flip"] == 6 and 6 <= report.images["crop"] == len(written) - 6
    for row in rows:
        assert row["license"] == "Attribution License"
        if row["augmentation"] == "none":
            assert "source_image" not in row and row["type"] not in report.per_source["flip"]
        else:
            picture = tmp_path / "aug" / str(row["image"])
            source = (tmp_path / "aug" / str(row["source_image"])).resolve()
            assert picture.is_file() and source.parent == (coco.parent / "images").resolve()
            with Image.open(picture) as opened, Image.open(source) as photo:
                assert row["augmentation"] == "crop" or opened.size == photo.size
    write_jsonl(rows, tmp_path / "aug" / QUESTIONS_FILE)
    items = load_dataset(tmp_path / "aug" / QUESTIONS_FILE)
    assert all(i.source_image is None or i.source_image.is_file() for i in items)
    assert {i.augmentation for i in items} == {"flip", "crop", "none"}


def test_same_seed_same_bytes(photos: tuple[Path, Path], tmp_path: Path) -> None:
    coco, questions = photos
    files = []
    for name, seed in (("one", 3), ("two", 3), ("three", 4)):
        _augment(coco, questions, tmp_path / name, seed)
        files.append((tmp_path / name / QUESTIONS_FILE).read_bytes())
    assert files[0] == files[1] and files[0] != files[2]
    crop = "images/p0-crop1.jpg"
    assert (tmp_path / "one" / crop).read_bytes() == (tmp_path / "two" / crop).read_bytes()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _validation_photos(out: Path) -> set[str]:
    rows = load_dataset(out / "validation_items.jsonl")
    return {Path(item.image).name[:16] for item in rows}


def test_export_splits_augmented_pictures_by_their_photo(
    photos: tuple[Path, Path], tmp_path: Path
) -> None:
    coco, questions = photos
    _augment(coco, questions, tmp_path / "aug")
    augmented = tmp_path / "aug" / QUESTIONS_FILE
    no_traces = tmp_path / "no-traces"
    plain = export_dataset(no_traces, tmp_path / "plain", val_fraction=0.34, labels=[questions])
    both = export_dataset(
        no_traces, tmp_path / "both", val_fraction=0.34, labels=[questions, augmented]
    ).card
    validation = _validation_photos(tmp_path / "both")
    assert len(validation) == 2 and validation == _validation_photos(tmp_path / "plain")
    assert plain.card["traces"] is None and both["traces"] is None

    source = {item.id: item.source_image for item in load_dataset(augmented)}
    train = [SFTRecord.model_validate_json(line)
             for line in (tmp_path / "both" / "train.jsonl").read_text().splitlines()]  # fmt: skip
    trained_augmented = [r for r in train if source.get(r.item_id)]
    assert trained_augmented and all(r.origin == "label" for r in train)
    assert all(_sha(source[r.item_id]) not in validation for r in trained_augmented)  # type: ignore[arg-type]
    # each record names its photo: an augmented copy its source photo's (held-out grouping)
    assert all((r.photo or "")[:16] == _sha(source[r.item_id]) for r in trained_augmented)  # type: ignore[arg-type]
    assert {r.photo for r in train if not source.get(r.item_id)} >= {
        r.photo for r in trained_augmented
    }
    held_out = load_dataset(tmp_path / "both" / "validation_items.jsonl")
    assert not [item for item in held_out if source.get(item.id)]
    on_validation = [i for i, path in source.items() if path and _sha(path) in validation]
    assert both["augmented_dropped_validation"] == len(on_validation) > 0
    assert set(both["records_per_augmentation"]["train"]) == {"flip", "crop", "none"}
    assert both["records_per_augmentation"]["validation"] == {
        "none": sum(1 for item in held_out if item.id.split("-")[1] == "extra")
    }
    assert "validation is real photos only" in (tmp_path / "both" / "README.md").read_text()


def test_cli_augment_and_export_with_two_labels_and_no_traces(
    photos: tuple[Path, Path], tmp_path: Path
) -> None:
    coco, questions = photos
    runner = CliRunner()
    out = tmp_path / "aug"
    args = ["distill", "augment", str(coco), "--questions", str(questions), "--out", str(out)]
    result = runner.invoke(app, [*args, "--crops", "1", "--no-flip"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / QUESTIONS_FILE).read_text().splitlines()]
    assert {row["augmentation"] for row in rows} == {"crop", "none"}
    assert "exist_both" in result.output and "pictures written: crop 6" in result.output
    bad = runner.invoke(app, [*args, "--min-visible", "1.5"])
    assert bad.exit_code == 2 and "min-visible" in bad.output and "Traceback" not in bad.output

    export = ["distill", "export", str(tmp_path / "none"), "--out", str(tmp_path / "e")]
    labels = ["--labels", str(questions), "--labels", str(out / QUESTIONS_FILE)]
    result = runner.invoke(app, [*export, *labels])
    assert result.exit_code == 0, result.output
    assert "no traces" in result.output and "augmented items of validation" in result.output
    card = json.loads((tmp_path / "e" / "card.json").read_text())
    assert card["labels"]["items"] == len(rows) + len(load_dataset(questions))
    twice = runner.invoke(app, [*export, "--labels", str(questions), "--labels", str(questions)])
    assert twice.exit_code == 2 and "is in both" in twice.output


@pytest.mark.skipif(
    not (DATA_DIR / "coco128" / "instances.json").is_file(), reason="no coco128 data"
)
def test_coco128_flips_every_question_and_crops_most_photos(tmp_path: Path) -> None:
    coco = DATA_DIR / "coco128" / "instances.json"
    questions = tmp_path / "q.jsonl"
    write_jsonl(generate(coco, questions)[0], questions)
    rows, report = augment(coco, questions, tmp_path / "aug", crops=1)
    assert sum(report.per_source["flip"].values()) == len(load_dataset(questions))
    assert report.images["flip"] >= 120 and report.images["crop"] >= 100
    assert sum(report.per_source["extra"].values()) >= 100
    assert {row["augmentation"] for row in rows} == {"flip", "crop", "none"}


def test_a_photo_without_questions_is_not_augmented(
    photos: tuple[Path, Path], tmp_path: Path
) -> None:
    coco, questions = photos
    lines = questions.read_text().splitlines(keepends=True)
    fewer = tmp_path / "fewer.jsonl"
    fewer.write_text("".join(line for line in lines if "p5.jpg" not in line))
    rows, report = augment(coco, fewer, tmp_path / "aug")
    assert report.photos == 5 and not [row for row in rows if str(row["id"]).startswith("p5")]
    assert report.skipped["photo without questions in the question file"] == 1
