"""Training in epochs: the held-out photos' loss per epoch, early stopping that keeps the best
checkpoint, the loss curve (JSON + PNG), and the cheap-epoch options (record subsets, top-layer
LoRA).

The student is the embedded one on the tiny random-init Llama, seeing the grid.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from vpagent.distill.student.data import hold_out_photos, load_split, photo_of, subset
from vpagent.distill.student.train import TrainOptions, train
from vpagent.student.base import StudentError
from vpagent.student.students import load_student


def _conflicting_export(export: Path, folder: Path) -> Path:
    """The test export, answer records only, every held-out photo's answer "blue" and every
    other training answer "red": the more the student learns, the worse its held-out loss. No
    validation split: training never reads it."""
    shutil.copytree(export / "images", folder / "images")
    records, _ = load_split(export, "train", ["answer"])
    _, held_out = hold_out_photos(records, 1)
    rows = []
    for record in records:
        colour = "blue" if record in held_out else "red"
        rows.append(record.model_copy(update={"answer": colour, "target": colour}))
    lines = [r.model_dump_json() for r in rows]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _held_out_loss(folder: Path, data: Path) -> float:
    student = load_student(folder)
    records, root = load_split(data, "train", ["answer"])
    _, held_out = hold_out_photos(records, 1)
    batch = student.collate(
        [student.training_example(root / r.image, r.prompt, r.target) for r in held_out]
    )
    with torch.inference_mode():
        return float(student.model.eval()(**batch).loss)


def test_early_stopping_keeps_the_best_epochs_checkpoint(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    data = _conflicting_export(export, tmp_path / "data")
    options = TrainOptions(
        data=data, out=tmp_path / "ckpt", student=str(lm_folder), epochs=12, patience=1,
        lr=2e-2, batch_size=4, tasks=["answer"], lora=False, held_out_records=1,
    )  # fmt: skip
    result = train(options, progress=False)
    losses = [e.validation_loss for e in result.epochs]
    assert all(loss is not None for loss in losses)
    best = min(range(len(losses)), key=lambda i: losses[i])
    assert result.best_epoch == best + 1 and result.best_validation_loss == losses[best]
    assert result.stopped_early and len(losses) < 12  # learning "red" ends up hurting "blue"
    assert len(losses) == best + 2 and losses[-1] > losses[best]  # patience 1: one worse epoch
    kept = _held_out_loss(options.out, data)
    assert kept == pytest.approx(losses[best], rel=1e-3)  # the student is the best epoch's
    assert kept != pytest.approx(losses[-1], rel=1e-3)  # not the last one's
    curve = json.loads((options.out / "loss_curve.json").read_text())
    assert curve["best_epoch"] == best + 1 and len(curve["epochs"]) == len(losses)
    assert (options.out / "loss_curve.png").stat().st_size > 1000
    metrics = json.loads((options.out / "train_metrics.json").read_text())
    assert metrics["seconds_per_epoch"] > 0 and metrics["tokens_per_second"] > 0
    first = result.epochs[0]
    assert first.steps == 1 and first.tokens > 0 and first.train_loss is not None


def test_without_patience_every_epoch_runs_and_is_validated(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    options = TrainOptions(
        data=export, out=tmp_path / "ckpt", student=str(lm_folder), epochs=2, lr=1e-3,
        batch_size=8, lora_layers=1, threads=1, held_out_records=2,
    )  # fmt: skip
    result = train(options, progress=False)
    assert [e.epoch for e in result.epochs] == [1, 2] and not result.stopped_early
    assert all(e.validation_loss is not None for e in result.epochs)
    assert result.validation_data is not None and result.validation_data["records"] == 2
    assert result.data["records"] == 6  # the held-out photo's two records are not trained on
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)


def test_patience_needs_held_out_photos(tmp_path: Path, lm_folder: Path, export: Path) -> None:
    with pytest.raises(StudentError, match="give --held-out-records N as well"):
        train(
            TrainOptions(data=export, out=tmp_path / "o", student=str(lm_folder), patience=1),
            progress=False,
        )


def test_held_out_photos_are_whole_with_their_augmented_copies(export: Path) -> None:
    records, _ = load_split(export, "train")
    keyed = [r.model_copy(update={"photo": f"sha-{r.image}"}) for r in records]
    first = keyed[0].photo
    copies = [  # an augmented copy of the first photo: another image file, the same photo key
        r.model_copy(update={"id": f"{r.id}-flip", "image": "images/flipped.jpg"})
        for r in keyed
        if r.photo == first
    ]
    for wanted in range(1, len(keyed)):
        training, held_out = hold_out_photos(keyed + copies, wanted)
        assert len(held_out) >= wanted and len(training) + len(held_out) == len(keyed + copies)
        assert not {photo_of(r) for r in training} & {photo_of(r) for r in held_out}
        copies_held = {c.id for c in copies} & {r.id for r in held_out}
        assert copies_held in (set(), {c.id for c in copies})  # all or none of the copies
        assert bool(copies_held) == (first in {r.photo for r in held_out})
    training, held_out = hold_out_photos(keyed, 1)
    fewer = [r for r in keyed if r.photo != training[0].photo]  # one training photo less
    assert hold_out_photos(fewer, 1)[1] == held_out  # the choice does not move with the rest
    with pytest.raises(StudentError, match="leaves no photo to train on"):
        hold_out_photos(keyed, len(keyed))


def test_records_without_a_photo_key_are_grouped_by_image_with_a_warning(
    export: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records, _ = load_split(export, "train")
    training, held_out = hold_out_photos(records, 1)
    assert {r.image for r in held_out} == {held_out[0].image}  # one image file, its two tasks
    assert not {r.image for r in training} & {held_out[0].image}
    assert "carry no photo key" in caplog.text


def test_training_never_reads_the_validation_split(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(export, data)
    (data / "validation.jsonl").write_text("not a record\n")  # read, it would fail at once
    options = TrainOptions(
        data=data, out=tmp_path / "ckpt", student=str(lm_folder), max_steps=1, patience=1,
        held_out_records=1, batch_size=8, lora_layers=1,
    )  # fmt: skip
    assert train(options, progress=False).validation_data is not None


def test_resuming_on_other_records_is_refused(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    common = {"data": export, "out": tmp_path / "ckpt", "student": str(lm_folder)}
    (tmp_path / "ckpt").mkdir()
    earlier = TrainOptions(**common, held_out_records=2, max_records=4)
    identity = {"student": str(lm_folder), "kind": "embedded", "model_type": "vpagent_student",
                "eyes": "grid", "lora": True}  # fmt: skip
    (tmp_path / "ckpt" / "run.json").write_text(
        json.dumps({**identity, "options": earlier.model_dump(mode="json")})
    )
    with pytest.raises(StudentError, match="held_out_records: 2, now 3"):
        train(TrainOptions(**common, held_out_records=3, max_records=4, resume=True))


def test_a_record_subset_is_the_same_for_every_seed(export: Path) -> None:
    records, _ = load_split(export, "train")
    chosen = subset(records, 3)
    assert len(chosen) == 3 and chosen == subset(records, 3)
    assert [r.id for r in chosen] == [r.id for r in records if r in chosen]  # order kept
    assert subset(records, 100) == records
