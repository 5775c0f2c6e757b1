"""The scene-text eyes: the offline pack's objects reach the student's prompt, cached per photo.

The scene description comes from the real offline pack (detector, classifier, OCR) where a test
needs the real objects; elsewhere a fixed analyzer stands in so the prompt's text is known.
The language model is the tiny random-init Llama of the other student tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vpagent.student.eyes import GRID_EYES, GRID_SCENE_EYES, SCENE_EYES
from vpagent.student.scene_text import SceneText, facts_text, settings_digest
from vpagent.student.students import EmbeddedStudent, feature_cache_dir, load_student
from vpagent.tools.offline.scene import SceneFacts, SceneObject
from vpagent.tools.types import Box

PROMPT = "How many dogs are there?\nAnswer with a single word or number."


def _two_dogs(rgb: np.ndarray) -> SceneFacts:
    height, width = rgb.shape[:2]
    facts = SceneFacts(width=width, height=height)
    for x0, colour in ((0, "brown"), (width / 2, "white")):
        box = Box(x0=x0, y0=0, x1=x0 + width / 4, y1=height / 2)
        facts.objects.append(
            SceneObject("dog", box, 0.9, "top left", box.area / (width * height), colour)
        )
    facts.labels = [("golden retriever", 0.6)]
    return facts


def _fixed(eyes: str, tmp_path: Path | None = None) -> SceneText:
    return SceneText(eyes, cache_dir=tmp_path, analyzer=_two_dogs, digest="fixed")


def test_facts_text_counts_places_and_colours_every_object() -> None:
    text = facts_text(_two_dogs(np.zeros((100, 200, 3), np.uint8)))
    lines = text.splitlines()
    assert lines[0] == "Objects: 2 dog."
    assert lines[1] == "dog: top left (12, 25) 12% brown"
    assert lines[2] == "dog: top left (62, 25) 12% white"
    assert lines[3] == "Looks like: golden retriever."
    empty = facts_text(SceneFacts(width=10, height=10))
    assert empty == "Objects: none detected."


def test_a_photos_objects_reach_the_prompt_of_a_scene_student(
    tmp_path: Path, lm_folder: Path, images_dir: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=SCENE_EYES)
    student.processor.scene = _fixed(SCENE_EYES)
    photo = images_dir / "two_dogs.jpg"
    inputs = student.processor.prompt_inputs([photo], [PROMPT])
    assert "image_features" not in inputs  # no image tokens that carry nothing
    assert int((inputs["input_ids"] == student.processor.image_token_id).sum()) == 0
    scene = student.processor.scene_of(photo)
    text = student.processor.prompt_text(PROMPT, scene)
    assert "Scene:\nObjects: 2 dog.\ndog: top left" in text and text.index("Scene") < text.index(
        "How many"
    )
    ids = student.processor.tokenizer(text, add_special_tokens=False, return_tensors="pt")
    torch.testing.assert_close(inputs["input_ids"], ids["input_ids"])
    example = student.training_example(photo, PROMPT, "2")
    batch = student.collate([example, example])
    assert set(batch) == {"input_ids", "attention_mask", "labels"}
    assert torch.isfinite(student.model(**batch).loss)
    assert student.modules_to_save == []  # the projector sees nothing: nothing to train there
    student.save(tmp_path / "s")
    loaded = load_student(tmp_path / "s")
    assert loaded.eyes == SCENE_EYES and loaded.processor.encoder is None
    assert loaded.processor.scene is not None and loaded.processor.scene.eyes == SCENE_EYES


def test_grid_plus_scene_reads_81_image_tokens_and_the_text(
    lm_folder: Path, images_dir: Path
) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=GRID_SCENE_EYES)
    student.processor.scene = _fixed(GRID_SCENE_EYES)
    photo = images_dir / "two_dogs.jpg"
    inputs = student.processor.prompt_inputs([photo], [PROMPT])
    assert int((inputs["input_ids"] == student.processor.image_token_id).sum()) == 81
    assert inputs["image_features"].shape[:2] == (1, 81)
    text = student.processor.prompt_text(PROMPT, student.processor.scene_of(photo))
    assert text.index("<image>") < text.index("Objects: 2 dog.") < text.index("How many")
    assert student.modules_to_save == ["projector"]
    assert student.model(**inputs).logits.shape[1] == inputs["input_ids"].shape[1]


def test_the_real_offline_pack_finds_the_dogs_and_a_blank_photo_still_works(
    tmp_path: Path, images_dir: Path, lm_folder: Path
) -> None:
    scene = SceneText(SCENE_EYES, cache_dir=tmp_path)
    text = scene.describe(images_dir / "two_dogs.jpg")
    first = text.splitlines()[0]
    assert first.startswith("Objects: ") and "dog" in first, text
    blank = np.full((240, 320, 3), 128, np.uint8)
    assert scene.describe(blank).startswith("Objects: none detected.")
    student = EmbeddedStudent.build(str(lm_folder), eyes=SCENE_EYES)
    student.processor.scene = scene
    [reply] = student.generate([blank], [PROMPT], max_new_tokens=3)
    assert 0.0 <= reply.confidence <= 1.0
    assert len(list(tmp_path.rglob("*.txt"))) == 2  # both photos cached on disk


def test_the_cache_key_holds_the_eyes_and_the_settings_and_the_cache_is_used(
    tmp_path: Path, images_dir: Path
) -> None:
    photo = images_dir / "two_dogs.jpg"
    keys = {_fixed(eyes).key(photo) for eyes in (SCENE_EYES, GRID_SCENE_EYES)}
    assert len(keys) == 2 and all("-scene-" in k or "-grid-scene-" in k for k in keys)
    other = SceneText(SCENE_EYES, analyzer=_two_dogs, digest="recalibrated").key(photo)
    assert other not in keys
    calls: list[int] = []

    def counting(rgb: np.ndarray) -> SceneFacts:
        calls.append(1)
        return _two_dogs(rgb)

    first = SceneText(SCENE_EYES, tmp_path, analyzer=counting, digest="d").describe(photo)
    again = SceneText(SCENE_EYES, tmp_path, analyzer=counting, digest="d").describe(photo)
    assert first == again and len(calls) == 1  # the second reader found it on disk
    SceneText(GRID_SCENE_EYES, tmp_path, analyzer=counting, digest="d").describe(photo)
    SceneText(SCENE_EYES, tmp_path, analyzer=counting, digest="e").describe(photo)
    assert len(calls) == 3  # other eyes, other settings: computed again


class _Detector:
    def __init__(self, threshold: float) -> None:
        self.score_threshold = threshold


def test_a_recalibrated_detector_changes_the_settings_digest() -> None:
    assert settings_digest((_Detector(0.3),)) == settings_digest((_Detector(0.3),))
    assert settings_digest((_Detector(0.3),)) != settings_digest((_Detector(0.35),))


@pytest.mark.parametrize("eyes", [GRID_EYES])
def test_feature_eyes_read_no_scene_text(eyes: str, lm_folder: Path, images_dir: Path) -> None:
    student = EmbeddedStudent.build(str(lm_folder), eyes=eyes)
    assert student.processor.scene is None
    assert student.processor.scene_of(images_dir / "two_dogs.jpg") is None
    assert student.processor.encoder.cache_dir == feature_cache_dir()  # features kept on disk


def test_an_image_text_to_text_student_reads_the_scene_text_and_keeps_it(
    tmp_path: Path, images_dir: Path
) -> None:
    from tests.fixtures.student_tiny import build_tiny_llava
    from vpagent.student.students import HFStudent, new_student

    student = new_student(str(build_tiny_llava(tmp_path / "llava")))
    assert isinstance(student, HFStudent) and student.scene is None
    student.scene = _fixed(SCENE_EYES)
    photo = images_dir / "two_dogs.jpg"
    example = student.training_example(photo, PROMPT, "2")
    assert "Scene:\nObjects: 2 dog." in example["text"]
    inputs = student._prompt_inputs([np.asarray(student_photo(photo))], [PROMPT])
    without = HFStudent(student.model, student.processor, "x")._prompt_inputs(
        [np.asarray(student_photo(photo))], [PROMPT]
    )
    assert inputs["input_ids"].shape[1] > without["input_ids"].shape[1]  # the text went in
    student.save(tmp_path / "saved")
    loaded = load_student(tmp_path / "saved")
    assert isinstance(loaded, HFStudent) and loaded.scene is not None


def student_photo(path: Path) -> np.ndarray:
    from vpagent.images import load_image

    return load_image(path)


def test_scene_text_option_is_refused_for_the_embedded_student(
    tmp_path: Path, lm_folder: Path, export: Path
) -> None:
    from vpagent.distill.student.train import TrainOptions, train
    from vpagent.student.base import StudentError

    options = TrainOptions(data=export, out=tmp_path / "o", student=str(lm_folder), scene_text=True)
    with pytest.raises(StudentError, match="--eyes scene"):
        train(options, progress=False)


def test_export_records_carry_the_scene_text(tmp_path: Path, export: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from vpagent.cli import app
    from vpagent.distill.export import add_scene_text
    from vpagent.student.records import SFTRecord

    folder = tmp_path / "export"
    shutil.copytree(export, folder)
    seen: list[str] = []

    def describe(photo: Path) -> str:
        seen.append(photo.name)
        return f"Objects: 1 {photo.stem}."

    written = add_scene_text(folder, describe)
    rows = [
        SFTRecord.model_validate_json(line)
        for split in ("train", "validation")
        for line in (folder / f"{split}.jsonl").read_text().splitlines()
    ]
    assert written == len(rows) == 10
    assert all(r.scene == f"Objects: 1 {Path(r.image).stem}." for r in rows)
    assert (folder / "data" / "train.parquet").is_file()
    refused = CliRunner().invoke(app, ["distill", "scene-text", str(tmp_path / "nothing")])
    assert refused.exit_code == 2 and "not an export folder" in refused.output
