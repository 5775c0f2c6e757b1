import json
from pathlib import Path

import pytest

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from vpagent.answers import normalize
from vpagent.evaluation.datasets import DatasetError, load_dataset
from vpagent.evaluation.evaluate import evaluate
from vpagent.evaluation.metrics import exact_match, map_to_choice, vqa_soft_accuracy


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Two.", "2"),
        ("The Bus", "bus"),
        ("  Yes! ", "yes"),
        ("3.5", "3.5"),
        ("a red-car", "red car"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


def test_metrics() -> None:
    assert exact_match("Two", ["2"]) == 1.0 and exact_match(None, ["2"]) == 0.0
    humans = ["2"] * 3 + ["3"] * 7
    assert vqa_soft_accuracy("3", humans) == 1.0
    assert vqa_soft_accuracy("2", humans) == pytest.approx(0.9)  # 3/3 in 7 subsets, 2/3 in 3
    assert vqa_soft_accuracy("4", humans) == 0.0
    assert map_to_choice("The answer is left", ["left", "right"]) == 0
    assert map_to_choice("rigth", ["left", "right"]) == 1
    assert map_to_choice(None, ["a"]) is None


def test_dev_jsonl_loads(data_dir: Path) -> None:
    items = load_dataset(data_dir / "dev.jsonl")
    assert len(items) == 31 and all(item.image.is_file() for item in items)
    car = next(item for item in items if item.id == "groc-3")
    assert car.answers == ["silver", "silver", "gray", "grey"]


def test_malformed_jsonl_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.jsonl").write_text('{"id": 1, "question": "Q?"}\n')
    with pytest.raises(DatasetError, match=r"bad\.jsonl:1: missing field 'answer'"):
        load_dataset(tmp_path / "bad.jsonl")


def test_evaluate_writes_results_and_report(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(spots_image()).save(tmp_path / "spots.png")
    rows = [
        {
            "id": "a",
            "image": "spots.png",
            "question": "How many spots?",
            "answer": "two",
            "type": "count",
        },
        {
            "id": "b",
            "image": "spots.png",
            "question": "How many spots?",
            "answer": "3",
            "type": "count",
        },
        {
            "id": "c",
            "image": "missing.png",
            "question": "How many?",
            "answer": "2",
            "type": "other",
        },
    ]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with make_agent([COUNT]) as agent:
        report, results = evaluate(
            load_dataset(tmp_path / "set.jsonl"), agent, out=tmp_path / "out.jsonl", progress=False
        )
    assert [r.score for r in results] == [1.0, 0.0, 0.0]
    assert report.accuracy == pytest.approx(1 / 3)
    assert report.per_type["count"].accuracy == 0.5 and report.errors == {"input": 1}
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 1 + 3  # header + items
    assert results[0].answered_by == "program" and results[0].verified
    assert results[2].answered_by is None and not results[2].verified  # the image is missing
    assert report.low <= report.accuracy <= report.high
    assert (report.per_type["other"].low, report.per_type["other"].high) == (0.0, 0.0)
