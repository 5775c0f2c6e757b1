"""Every dataset layout `eval` and `distill` read, each built small in tmp_path."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from vpagent.evaluation.datasets import DatasetError, EvalItem, load_dataset, read_dataset
from vpagent.evaluation.datasets.choices import letter_index, split_options
from vpagent.evaluation.evaluate import evaluate, score_item


def png(path: Path, size: tuple[int, int] = (40, 30), colour: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def png_bytes(size: tuple[int, int], colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def sketchpad_item(root: Path, name: str, request: dict[str, object], images: list[str]) -> None:
    for image in images:
        png(root / name / image)
    (root / name / "request.json").write_text(json.dumps(request))


def make_sketchpad(root: Path) -> Path:
    """Items as Visual Sketchpad ships them under tasks/<task>/processed/."""
    folder = root / "tasks" / "blink_spatial" / "processed"
    tag = "<img src='../tasks/blink_spatial/processed/{0}/image.jpg'>"
    sketchpad_item(
        folder, "val_Spatial_Relation_10",
        {
            "query": tag.format("val_Spatial_Relation_10") + " Is the laptop touching the "
            "person?\nSelect from the following choices.\n(A) yes\n(B) no",
            "images": ["../tasks/blink_spatial/processed/val_Spatial_Relation_10/image.jpg"],
            "answer": "(A)",
        },
        ["image.jpg"],
    )  # fmt: skip
    jigsaw = [f"../tasks/blink_jigsaw/processed/val_Jigsaw_1/image{i}.jpg" for i in (1, 2, 3)]
    sketchpad_item(
        folder, "val_Jigsaw_1",
        {
            "query": "<img src='x'> <img src='y'> <img src='z'> Which of the second image or the "
            "third image is the missing part?\nSelect from the following choices.\n\n"
            "(A) the second image\n(B) the third image\n",
            "images": jigsaw,
            "answer": "(B)",
        },
        ["image1.jpg", "image2.jpg", "image3.jpg"],
    )  # fmt: skip
    sketchpad_item(
        folder, "val_Spatial_Relation_2",
        {"query": 'Can you see the key "Z" in the image? Options: (a) Yes (b) No',
         "images": ["../tasks/mmvp/processed/2/2.jpg"], "answer": "(b)"},
        ["2.jpg"],
    )  # fmt: skip
    sketchpad_item(
        folder, "val_Spatial_Relation_3",
        {"query": "Is it? (A) yes (B) no", "images": ["image.jpg"], "answer": "(C)"},
        ["image.jpg"],
    )  # fmt: skip
    return folder


def test_sketchpad_folders(tmp_path: Path) -> None:
    loaded = read_dataset(make_sketchpad(tmp_path), cache=tmp_path / "cache")
    assert loaded.layout == "Visual Sketchpad folders"
    assert dict(loaded.skipped) == {"answer is not one of the options": 1}
    by_id = {item.id: item for item in loaded.items}
    assert list(by_id) == ["val_Jigsaw_1", "val_Spatial_Relation_2", "val_Spatial_Relation_10"]
    touch = by_id["val_Spatial_Relation_10"]
    assert touch.question == "Is the laptop touching the person?"
    assert touch.choices == ["yes", "no"] and touch.answers == ["yes"]
    assert touch.type == "Spatial_Relation" and touch.image.is_file() and touch.images is None
    mmvp = by_id["val_Spatial_Relation_2"]
    assert mmvp.choices == ["Yes", "No"] and mmvp.answers == ["No"]
    jigsaw = by_id["val_Jigsaw_1"]
    assert jigsaw.choices == ["the second image", "the third image"]
    assert jigsaw.answers == ["the third image"] and len(jigsaw.images or []) == 3
    assert jigsaw.question.startswith("The picture shows 3 images side by side, numbered 1 to 3")
    with Image.open(jigsaw.image) as canvas:  # three 40x30 pictures, 16 px apart
        assert canvas.size == (3 * 40 + 2 * 16, 30)


@pytest.mark.parametrize(
    ("text", "question", "options"),
    [
        ("Which? (A) red (B) blue (C) green", "Which?", ["red", "blue", "green"]),
        ("Point (A) or (B)?\nChoices: (A) A is closer\n(B) B is closer", "Point (A) or (B)?",
         ["A is closer", "B is closer"]),
    ],
)  # fmt: skip
def test_options_inside_the_question(text: str, question: str, options: list[str]) -> None:
    assert split_options(text) == (question, options)
    assert split_options("How many cats?") is None


def test_letter_answers_score_as_their_choice() -> None:
    item = EvalItem(
        id="1", image=Path("x.png"), question="Q", answers=["no"], choices=["yes", "no"]
    )
    assert [score_item(item, p) for p in ("(B)", "B", "b.", "(B) no", "no", "(A)", None)] == [
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0,
    ]  # fmt: skip
    assert letter_index("(E)", 2) is None


def test_hf_parquet_blink_and_vqa(tmp_path: Path) -> None:
    from datasets import Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    blink = Dataset.from_dict(
        {
            "idx": ["val_Spatial_Relation_1", "val_Jigsaw_1"],
            "question": ["Is the cat left of the dog?", "Which piece fits?"],
            "sub_task": ["Spatial_Relation", "Jigsaw"],
            "image_1": [{"bytes": png_bytes((20, 10), "red"), "path": None}] * 2,
            "image_2": [None, {"bytes": png_bytes((10, 10), "blue"), "path": None}],
            "choices": [["yes", "no"], ["the second image", "the third image"]],
            "answer": ["(B)", "(A)"],
            "prompt": ["...", "..."],
        },
        features=Features(
            {
                "idx": Value("string"),
                "question": Value("string"),
                "sub_task": Value("string"),
                "image_1": ImageFeature(),
                "image_2": ImageFeature(),
                "choices": List(Value("string")),
                "answer": Value("string"),
                "prompt": Value("string"),
            }
        ),
    )
    folder = tmp_path / "BLINK" / "Spatial_Relation"
    folder.mkdir(parents=True)
    blink.to_parquet(folder / "val-00000-of-00001.parquet")
    cache = tmp_path / "cache"
    items = load_dataset(tmp_path / "BLINK", cache=cache)
    assert [i.answers for i in items] == [["no"], ["the second image"]]
    assert items[0].type == "Spatial_Relation" and items[0].image.parent == cache
    assert items[1].images and len(items[1].images) == 2
    assert "2 images side by side" in items[1].question
    cached = sorted(cache.iterdir())
    assert load_dataset(tmp_path / "BLINK", cache=cache)[0].image == items[0].image
    assert sorted(cache.iterdir()) == cached  # content-hashed: nothing written twice

    vqa = Dataset.from_dict(
        {
            "question_id": [5],
            "question": ["What animal?"],
            "image": [{"bytes": png_bytes((8, 8), "green"), "path": None}],
            "answers": [[{"answer": "dog", "answer_id": i} for i in range(10)]],
        },
        features=Features(
            {
                "question_id": Value("int64"),
                "question": Value("string"),
                "image": ImageFeature(),
                "answers": List({"answer": Value("string"), "answer_id": Value("int64")}),
            }
        ),
    )
    vqa.to_parquet(tmp_path / "vqa.parquet")
    (item,) = load_dataset(tmp_path / "vqa.parquet", cache=cache)
    assert item.id == "5" and item.soft and item.answers == ["dog"] * 10


def test_gqa_with_images_folder(tmp_path: Path) -> None:
    questions = {
        "201": {"imageId": "n1", "question": "Is the cat red?", "answer": "no",
                "types": {"structural": "verify"}},
        "202": {"imageId": "n2", "question": "What is it?"},  # test split: no answer
    }  # fmt: skip
    (tmp_path / "questions").mkdir()
    (tmp_path / "questions" / "testdev_balanced_questions.json").write_text(json.dumps(questions))
    with pytest.raises(DatasetError, match="pass --images"):
        read_dataset(tmp_path / "questions" / "testdev_balanced_questions.json")
    png(tmp_path / "images" / "n1.jpg")
    loaded = read_dataset(tmp_path / "questions" / "testdev_balanced_questions.json")
    (item,) = loaded.items
    assert item.type == "verify" and item.image.is_file() and item.answers == ["no"]
    assert dict(loaded.skipped) == {"no answer (test split)": 1}


def test_vqav2_questions_or_annotations_file(tmp_path: Path) -> None:
    questions = {
        "data_subtype": "val2014",
        "questions": [{"image_id": 7, "question": "What is it?", "question_id": 70}],
    }
    notes = {
        "annotations": [
            {"question_id": 70, "image_id": 7, "answer_type": "other",
             "answers": [{"answer": "dog", "answer_id": i} for i in range(10)]}
        ]
    }  # fmt: skip
    (tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps(questions))
    png(tmp_path / "val2014" / "COCO_val2014_000000000007.jpg")
    with pytest.raises(DatasetError, match=r"v2_mscoco_val2014_annotations\.json"):
        load_dataset(tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json")
    (tmp_path / "v2_mscoco_val2014_annotations.json").write_text(json.dumps(notes))
    for name in (
        "v2_OpenEnded_mscoco_val2014_questions.json",
        "v2_mscoco_val2014_annotations.json",
    ):
        (item,) = load_dataset(tmp_path / name)
        assert item.soft and item.image.name == "COCO_val2014_000000000007.jpg"
        assert item.type == "other" and item.answers == ["dog"] * 10


def test_aokvqa(tmp_path: Path) -> None:
    rows = [
        {"question_id": "q1", "image_id": 9, "question": "Why?", "choices": ["a", "rain", "c"],
         "correct_choice_idx": 1, "direct_answers": ["rain"] * 10,
         "difficult_direct_answer": False},
        {"question_id": "q2", "image_id": 9, "question": "Who?", "choices": ["x", "y"]},
    ]  # fmt: skip
    (tmp_path / "aokvqa_v1p0_val.json").write_text(json.dumps(rows))
    png(tmp_path / "coco" / "000000000009.jpg")
    loaded = read_dataset(tmp_path / "aokvqa_v1p0_val.json", images=tmp_path / "coco")
    (item,) = loaded.items
    assert item.choices == ["a", "rain", "c"] and item.answers == ["rain"] and item.image.is_file()
    assert dict(loaded.skipped) == {"no answer (test split)": 1}


def test_jsonl_carries_licence_and_source(tmp_path: Path) -> None:
    row = {"id": "x", "image": "p.png", "question": "Q?", "answer": "2", "type": "count",
           "license": "Attribution License", "source": "toy, image 1"}  # fmt: skip
    (tmp_path / "q.jsonl").write_text(json.dumps(row) + "\n")
    loaded = read_dataset(tmp_path / "q.jsonl")
    assert loaded.items[0].license == "Attribution License" and loaded.missing_images == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", '{"foo": 1}', "no known layout; expected vpagent JSONL"),
        ("x.json", "{oops", "not valid JSON"),
        ("x.csv", "a,b", "unknown file type .csv"),
        ("c.json", '{"images": [], "annotations": [], "categories": []}', "distill questions"),
        ("x.parquet", "not parquet", "not a readable parquet file"),
    ],
)
def test_unknown_layouts_are_one_clear_error(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(tmp_path / name)


def test_empty_folder_and_images_option_misuse(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="without"):
        load_dataset(tmp_path)
    (tmp_path / "q.jsonl").write_text(
        json.dumps({"image": "p.png", "question": "Q?", "answer": "1"}) + "\n"
    )
    with pytest.raises(DatasetError, match="--images is not used"):
        load_dataset(tmp_path / "q.jsonl", images=tmp_path)


def test_eval_cli_rejects_an_unknown_layout_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"foo": 1}')
    done = subprocess.run(
        [sys.executable, "-m", "vpagent", "eval", str(tmp_path / "x.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "no known layout" in " ".join(done.stderr.split())


def test_evaluate_a_sketchpad_folder_with_a_fake_agent(tmp_path: Path) -> None:
    folder = tmp_path / "processed"
    for name, answer in (("val_Count_1", "(B)"), ("val_Count_2", "(A)")):
        (folder / name).mkdir(parents=True)
        Image.fromarray(spots_image()).save(folder / name / "image.png")
        request = {
            "query": "How many spots are there?\nSelect from the following choices.\n(A) 1\n(B) 2",
            "images": [f"../tasks/count/processed/{name}/image.png"],
            "answer": answer,
        }
        (folder / name / "request.json").write_text(json.dumps(request))
    items = load_dataset(folder)
    with make_agent([COUNT]) as agent:
        report, results = evaluate(items, agent, progress=False)
    assert [r.prediction for r in results] == ["2", "2"]
    assert [r.score for r in results] == [1.0, 0.0] and report.per_type["Count"].n == 2
