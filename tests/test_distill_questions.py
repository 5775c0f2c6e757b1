"""Questions from COCO annotations: exact answers on known geometry, no ambiguous items."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vpagent.distill.coco import CocoError, load_coco
from vpagent.distill.questions import (
    QuestionError,
    Rules,
    balance,
    generate,
    plural,
    there_is,
    write_jsonl,
)
from vpagent.evaluation.datasets import load_dataset

CATEGORIES = ["dog", "car", "cup", "person", "bowl", "cat"]
# Picture "a" (200x100): a dog left of a much bigger car, two cups below the dog's level between
# them, a person too small to count (20 px, under 0.2% of the picture).
A = [
    ("dog", [10, 30, 40, 40]),
    ("car", [120, 10, 70, 60]),
    ("cup", [60, 80, 10, 10]),
    ("cup", [100, 80, 10, 10]),
    ("person", [95, 5, 4, 5]),
]
# Picture "b": a cat and a dog overlapping along both axes, and a crowd of people.
B = [("cat", [20, 20, 60, 60]), ("dog", [60, 30, 60, 50]), ("person", [150, 10, 40, 80])]

EXPECTED_A = {
    "How many dogs are there?": "1",
    "How many cars are there?": "1",
    "How many cups are there?": "2",
    "Is there a dog in the picture?": "yes",
    "Is there a car in the picture?": "yes",
    "Is there a cup in the picture?": "yes",
    "Is there a bowl in the picture?": "no",
    "Is there a cat in the picture?": "no",
    "Is the dog to the left or to the right of the car?": "left",
    "Is the car to the left or to the right of the dog?": "right",
    "Is the dog to the left of the car?": "yes",
    "Is the dog to the right of the car?": "no",
    "Is the car to the right of the dog?": "yes",
    "Is the car to the left of the dog?": "no",
    "Which takes up more of the picture, the dog or the car?": "car",
    "Which takes up more of the picture, the car or the dog?": "car",
    "Which takes up less of the picture, the dog or the car?": "dog",
    "Which takes up less of the picture, the car or the dog?": "dog",
    "What is below the dog?": "cup",
    "How many cups are to the left of the dog?": "0",
    "How many cups are to the right of the dog?": "2",
    "Is there a cup to the left of the dog?": "no",
    "Is there a cup to the right of the dog?": "yes",
    "How many cups are above the dog?": "0",
    "How many cups are below the dog?": "2",
    "Is there a cup above the dog?": "no",
    "Is there a cup below the dog?": "yes",
    "How many cars are to the left of the dog?": "0",
    "How many cars are to the right of the dog?": "1",
    "Is there a car to the left of the dog?": "no",
    "Is there a car to the right of the dog?": "yes",
    "How many cups are to the left of the car?": "2",
    "How many cups are to the right of the car?": "0",
    "Is there a cup to the left of the car?": "yes",
    "Is there a cup to the right of the car?": "no",
    "How many cups are above the car?": "0",
    "How many cups are below the car?": "2",
    "Is there a cup above the car?": "no",
    "Is there a cup below the car?": "yes",
    "How many dogs are to the left of the car?": "1",
    "How many dogs are to the right of the car?": "0",
    "Is there a dog to the left of the car?": "yes",
    "Is there a dog to the right of the car?": "no",
}
EXPECTED_B = {
    "How many cats are there?": "1",
    "How many dogs are there?": "1",
    "Is there a cat in the picture?": "yes",
    "Is there a dog in the picture?": "yes",
    "Is there a person in the picture?": "yes",
    "Is there a bowl in the picture?": "no",
    "Is there a car in the picture?": "no",
    "Is there a cup in the picture?": "no",
}


def make_coco(root: Path) -> Path:
    """Four pictures: a, b, one whose file is missing, one whose size is wrong."""
    (root / "images").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (200, 100), "gray").save(root / "images" / f"{name}.png")
    Image.new("RGB", (50, 50), "gray").save(root / "images" / "wrong-size.png")
    images = [
        {"id": i, "file_name": f"{name}.png", "width": 200, "height": 100, "license": 1}
        for i, name in enumerate(["a", "b", "missing", "wrong-size"], 1)
    ]
    annotations = []
    for image_id, things in ((1, A), (2, B), (3, A), (4, A)):
        for name, box in things:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORIES.index(name) + 1,
                    "bbox": box,
                    "area": box[2] * box[3] * 0.8,
                    "iscrowd": int(image_id == 2 and name == "person"),
                }
            )
    coco = {
        "info": {"description": "toy"},
        "licenses": [{"id": 1, "name": "Attribution License", "url": "http://example.org/by"}],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n} for i, n in enumerate(CATEGORIES, 1)],
    }
    path = root / "instances.json"
    path.write_text(json.dumps(coco))
    return path


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_answer_is_exact_and_nothing_ambiguous(tmp_path: Path, seed: int) -> None:
    coco = make_coco(tmp_path / "data")
    rows, report = generate(
        coco, tmp_path / "q.jsonl", seed=seed, per_image=100, rules=Rules(max_answer_share=1)
    )
    expected = {"a": EXPECTED_A, "b": EXPECTED_B}
    for row in rows:
        table = expected[Path(str(row["image"])).stem]
        assert table.get(str(row["question"])) == row["answer"], row
    texts = {(Path(str(r["image"])).stem, r["question"]): r["answer"] for r in rows}
    assert texts[("a", "How many cups are there?")] == "2"
    assert texts[("a", "What is below the dog?")] == "cup"
    assert report.per_type.keys() == {"count", "exist", "spatial", "size", "object", "compose"}
    assert report.skipped == {"image missing": 1, "image size differs from the annotations": 1}
    assert rows[0]["license"] == "Attribution License" and rows[0]["source"] == "toy, image 1"


def test_exist_is_balanced_and_no_names_only_absent_categories(tmp_path: Path) -> None:
    rows, _ = generate(make_coco(tmp_path), tmp_path / "q.jsonl", per_image=100)
    exist = [r for r in rows if r["type"] == "exist"]
    assert [r["answer"] for r in exist].count("yes") == [r["answer"] for r in exist].count("no")


def test_same_seed_same_bytes_other_seed_other_file(tmp_path: Path) -> None:
    coco = make_coco(tmp_path / "data")
    files = []
    for name, seed in (("one", 7), ("two", 7), ("three", 8)):
        out = tmp_path / f"{name}.jsonl"
        write_jsonl(generate(coco, out, seed=seed, per_image=6)[0], out)
        files.append(out.read_bytes())
    assert files[0] == files[1] and files[0] != files[2]


def test_image_paths_resolve_after_moving(tmp_path: Path) -> None:
    coco = make_coco(tmp_path / "before" / "data")
    out = tmp_path / "before" / "out" / "deeper" / "q.jsonl"
    write_jsonl(generate(coco, out)[0], out)
    assert not json.loads(out.read_text().splitlines()[0])["image"].startswith("/")
    shutil.move(tmp_path / "before", tmp_path / "after")
    items = load_dataset(tmp_path / "after" / "out" / "deeper" / "q.jsonl")
    assert items and all(item.image.is_file() for item in items)


def test_answers_are_capped_per_type() -> None:
    rows = [{"type": "count", "answer": "1"}] * 8 + [{"type": "count", "answer": "2"}] * 2
    kept, dropped = balance([dict(r) for r in rows], 0.5, random.Random(0))
    assert dropped == 6 and [r["answer"] for r in kept].count("1") == 2


def test_coco128_gives_hundreds_of_questions_of_six_types(data_dir: Path, tmp_path: Path) -> None:
    rows, report = generate(data_dir / "coco128" / "instances.json", tmp_path / "q.jsonl")
    assert len(rows) >= 300
    assert sum(n >= 10 for n in report.per_type.values()) >= 4
    assert all(str(r["image"]).endswith(".jpg") for r in rows)
    for kind in report.per_type:
        answers = Counter(r["answer"] for r in rows if r["type"] == kind)
        assert max(answers.values()) <= 0.5 * sum(answers.values()), kind


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"images": []}', "not a COCO instance file"),
        (
            '{"images": [{"id": 1, "file_name": "a.png", "width": 2, "height": 2}], '
            '"annotations": [{"id": 1, "image_id": 1, "category_id": 9, "bbox": [0, 0, 1, 1]}],'
            ' "categories": [{"id": 1, "name": "dog"}]}',
            "category 9",
        ),
        (
            '{"images": [{"id": 1, "file_name": "a.png", "width": 2}], "annotations": [], '
            '"categories": [{"id": 1, "name": "dog"}]}',
            "images.0.height",
        ),
    ],
)
def test_malformed_annotations_are_one_clear_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CocoError, match=message):
        load_coco(path)


def test_no_images_found_and_bad_types(tmp_path: Path) -> None:
    coco = make_coco(tmp_path)
    with pytest.raises(QuestionError, match="pass --images"):
        generate(coco, tmp_path / "q.jsonl", images=tmp_path / "elsewhere")
    with pytest.raises(QuestionError, match="colour"):
        generate(coco, tmp_path / "q.jsonl", types=["colour"])


def test_wording() -> None:
    assert [plural(n) for n in ("person", "bus", "knife", "wine glass", "skis", "cup")] == [
        "people", "buses", "knives", "wine glasses", "skis", "cups",
    ]  # fmt: skip
    assert there_is("apple") == "Is there an apple" and there_is("skis") == "Are there any skis"


def test_cli_writes_file_and_reports_bad_input(tmp_path: Path) -> None:
    coco = make_coco(tmp_path / "data")
    run = [sys.executable, "-m", "vpagent", "distill", "questions"]
    done = subprocess.run(
        [*run, str(coco), "--out", str(tmp_path / "q.jsonl"), "--types", "count"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert rows and {r["type"] for r in rows} == {"count"}
    (tmp_path / "bad.json").write_text("[1, 2]")
    done = subprocess.run(
        [*run, str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.jsonl")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error:" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.jsonl").exists()
