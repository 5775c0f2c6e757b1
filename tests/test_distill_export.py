"""`distill export`: SFT JSONL + parquet split by image, self-contained images, data card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.agents import fake_agent, spots_png, write_dataset
from vpagent.cli import app
from vpagent.distill.export import export_dataset, split_images
from vpagent.distill.rationales import write_rationales
from vpagent.distill.traces import generate_traces
from vpagent.evaluation.datasets import load_dataset
from vpagent.student.records import SFTRecord, parse_answer

N_IMAGES = 6


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six images (1-3 spots), two questions each; labels 3 (sample 0) or the count (sample 1)."""
    folder = tmp_path_factory.mktemp("export")
    rows = []
    for i in range(N_IMAGES):
        spots = 1 + i % 3
        spots_png(folder / f"img{i}.png", spots, height=40 + 10 * i)
        if i == 0:  # same picture, another file name: must land in the same split
            (folder / "copy0.png").write_bytes((folder / "img0.png").read_bytes())
        rows.append(
            {
                "id": f"c{i}",
                "image": f"img{i}.png",
                "question": "How many spots?",
                "answer": str(spots),
                "type": "count",
                "license": "CC BY 4.0",
            }
        )
        rows.append(
            {
                "id": f"n{i}",
                "image": f"img{i}.png",
                "question": "How many spots now?",
                "answer": "7",
                "type": "hard",
            }
        )
    rows.append(
        {"id": "dup", "image": "copy0.png", "question": "Spots?", "answer": "1", "type": "count"}
    )
    rows.append({"id": "gone", "image": "nope.png", "question": "Spots?", "answer": "1"})
    dataset = write_dataset(folder, rows)
    out = folder / "traces"
    generate_traces(load_dataset(dataset), out, fake_agent, k=2, progress=False)
    return out


def test_export_split_by_image_parquet_and_card(traces: Path, tmp_path: Path) -> None:
    from datasets import load_dataset as hf_load

    out = tmp_path / "export"
    card = export_dataset(traces, out, val_fraction=0.34, seed=0).card
    rows = {
        split: [
            SFTRecord.model_validate_json(line)
            for line in (out / f"{split}.jsonl").read_text().splitlines()
        ]
        for split in ("train", "validation")
    }
    images = {split: {r.image for r in records} for split, records in rows.items()}
    assert images["train"] and images["validation"] and not images["train"] & images["validation"]
    assert len(images["train"] | images["validation"]) == N_IMAGES  # copy0.png is img0.png
    for records in rows.values():
        for record in records:
            assert (out / record.image).is_file() and record.image.startswith("images/")
            if record.task == "rationale":
                assert parse_answer(record.target) == record.answer
                assert record.target.startswith("I look for spots and find")
            else:
                assert record.target == record.answer
    assert {r.task for r in rows["train"]} == {"rationale", "answer"}

    parquet = hf_load(
        "parquet",
        data_files={s: str(out / "data" / f"{s}.parquet") for s in ("train", "validation")},
    )
    assert parquet["train"].num_rows == len(rows["train"])
    assert SFTRecord(**parquet["validation"][0]) == rows["validation"][0]

    held_out = load_dataset(out / "validation_items.jsonl")  # every item on a validation image
    assert {Path(i.image).name for i in held_out} <= {Path(p).name for p in images["validation"]}
    assert any(i.id.startswith("n") for i in held_out)  # unverified items are there too

    assert card["items"] == 2 * N_IMAGES + 2 and card["verified"] == N_IMAGES + 1
    assert card["per_type"]["count"] == {"items": N_IMAGES + 1, "verified": N_IMAGES + 1,
                                         "coverage": 1.0}  # fmt: skip
    assert card["per_type"]["hard"]["coverage"] == 0.0
    assert card["rejections"] == {"no_match": N_IMAGES, "image_missing": 1}
    assert card["licenses"] == {"CC BY 4.0": N_IMAGES, "unspecified": N_IMAGES + 2}
    assert card["teacher"]["k"] == 2
    train_items = card["splits"]["train"]["records_per_task"]["rationale"]
    assert train_items + card["splits"]["validation"]["records_per_task"]["rationale"] == 7
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\n") and "| count | 7 | 7 | 100.0% |" in readme
    assert json.loads((out / "card.json").read_text()) == card


def test_split_is_deterministic_and_seeded() -> None:
    hashes = {f"{i:064x}" for i in range(50)}
    first = split_images(hashes, 0.2, seed=0)
    assert len(first) == 10 and first == split_images(hashes, 0.2, seed=0)
    assert first != split_images(hashes, 0.2, seed=1)
    assert split_images({"a", "b"}, 0.1, seed=0) and not split_images({"a"}, 0.1, seed=0)


def test_an_empty_split_has_no_parquet_and_the_card_says_how_to_load(
    traces: Path, tmp_path: Path
) -> None:
    from datasets import load_dataset as hf_load

    card = export_dataset(traces, tmp_path / "e", val_fraction=0.0).card
    assert card["splits"]["validation"]["records"] == 0
    assert not (tmp_path / "e" / "data" / "validation.parquet").exists()
    readme = (tmp_path / "e" / "README.md").read_text()
    assert "split: validation" not in readme
    assert 'data_files={"train": "data/train.parquet"}' in readme
    data = hf_load("parquet", data_files={"train": str(tmp_path / "e/data/train.parquet")})
    assert data["train"].num_rows == 14


def test_stored_rationales_are_used(traces: Path, tmp_path: Path) -> None:
    counts = write_rationales(traces)
    assert counts == {"template": 7} and write_rationales(traces) == {}  # resumable: nothing new
    card = export_dataset(traces, tmp_path / "e").card
    assert card["rationales"] == {"stored": 7}
    (traces / "rationales.jsonl").unlink()


def test_cli_export_and_its_errors(traces: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["distill", "export", str(traces), "--out", str(tmp_path / "e")])
    assert result.exit_code == 0, result.output
    assert "coverage" in result.output and (tmp_path / "e" / "README.md").is_file()
    empty = runner.invoke(app, ["distill", "export", str(tmp_path / "nothing"), "--out", "x"])
    assert empty.exit_code == 2 and "holds no traced items" in " ".join(empty.output.split())
    assert "Traceback" not in empty.output
    bad = runner.invoke(
        app, ["distill", "export", str(traces), "--out", "x", "--val-fraction", "1.5"]
    )
    assert bad.exit_code == 2 and "val-fraction" in bad.output


def test_labels_add_answer_only_records_for_items_without_a_program(
    traces: Path, tmp_path: Path
) -> None:
    folder = traces.parent
    spots_png(folder / "untraced.png", 2, height=90)
    labels = folder / "labels.jsonl"
    rows = [json.loads(line) for line in (folder / "q.jsonl").read_text().splitlines()]
    rows.append({"id": "new", "image": "untraced.png", "question": "Spots?", "answer": "2"})
    labels.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "export"
    card = export_dataset(traces, out, val_fraction=0.34, seed=0, labels=labels).card
    records = [
        SFTRecord.model_validate_json(line)
        for split in ("train", "validation")
        for line in (out / f"{split}.jsonl").read_text().splitlines()
    ]
    from_labels = {r.item_id: r for r in records if r.origin == "label"}
    # the six unverified "n" items and the untraced one; verified items keep their program records
    assert set(from_labels) == {f"n{i}" for i in range(N_IMAGES)} | {"new"}
    assert all(r.task == "answer" and r.target == r.answer for r in from_labels.values())
    assert from_labels["n0"].target == "7" and from_labels["new"].target == "2"
    assert not any(r.origin == "label" and r.item_id.startswith("c") for r in records)
    assert card["labels"] == {"dataset": str(labels), "items": 7, "image_missing": 1}
    origins = [s["records_per_origin"].get("label", 0) for s in card["splits"].values()]
    assert sum(origins) == 7

    split_of_image: dict[str, str] = {}
    for split in ("train", "validation"):
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            image = SFTRecord.model_validate_json(line).image
            assert split_of_image.setdefault(image, split) == split  # still split by image
    assert len(split_of_image) == N_IMAGES + 1  # the untraced photo is in the export too
    held_out = [json.loads(r) for r in (out / "validation_items.jsonl").read_text().splitlines()]
    ids = [row["id"] for row in held_out]
    assert len(ids) == len(set(ids))
    assert {r.item_id for r in records if r.image in {row["image"] for row in held_out}} <= set(ids)
    assert "from human labels" in (out / "README.md").read_text()


def test_cli_export_with_labels_reports_them_and_refuses_a_bad_dataset(
    traces: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    labels = traces.parent / "q.jsonl"
    args = ["distill", "export", str(traces), "--out", str(tmp_path / "e"), "--labels"]
    result = runner.invoke(app, [*args, str(labels)])
    assert result.exit_code == 0, result.output
    assert "from labels" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x", "question": "no image or answer"}\n')
    bad = runner.invoke(app, [*args, str(broken)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output, bad.output
