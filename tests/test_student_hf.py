"""transformers image-text-to-text students (LLaVA, Idefics3/SmolVLM, Qwen2-VL, PaliGemma).

Each is a tiny random-init model of the real architecture with its real processor, saved to a
folder and trained through ``vpagent distill train``'s code path with LoRA: the loss falls on 8
records, the merged student saves and loads back with the same outputs, and it generates.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures.student_tiny import (
    build_tiny_idefics3,
    build_tiny_llava,
    build_tiny_paligemma,
    build_tiny_qwen2_vl,
)
from vpagent.distill.student.train import TrainOptions, train
from vpagent.student.students import HFStudent, load_student, new_student

ARCHITECTURES = [
    pytest.param(build_tiny_llava, "llava", id="llava"),
    pytest.param(build_tiny_idefics3, "idefics3", id="idefics3", marks=pytest.mark.slow),
    pytest.param(build_tiny_qwen2_vl, "qwen2_vl", id="qwen2-vl", marks=pytest.mark.slow),
    pytest.param(build_tiny_paligemma, "paligemma", id="paligemma", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("build", "model_type"), ARCHITECTURES)
def test_trains_saves_loads_and_generates(
    tmp_path: Path, export: Path, build, model_type: str
) -> None:  # type: ignore[no-untyped-def]
    folder = build(tmp_path / "base")
    student = new_student(str(folder))
    assert isinstance(student, HFStudent) and student.model_type == model_type
    result = train(
        TrainOptions(data=export, out=tmp_path / "ckpt", student=str(folder), max_steps=4,
                     batch_size=8, lr=5e-3, save_steps=100),
        progress=False,
        student=student,
    )  # fmt: skip
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 4 and losses[-1] < losses[0]

    photo = export / "images" / "bus.jpg"
    batch = student.collate(
        [student.training_example(photo, "What color is the bus?", "blue")]
    )  # the merged, trained model in memory
    student.model.eval()
    with torch.no_grad():
        expected = student.model(**batch).logits
    loaded = load_student(tmp_path / "ckpt")
    assert isinstance(loaded, HFStudent) and loaded.model_type == model_type
    assert not any("lora" in name for name in loaded.model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(loaded.model.eval()(**batch).logits, expected)

    inputs = loaded._prompt_inputs([photo], ["What color is the bus?"])
    out = loaded.model.generate(**inputs, min_new_tokens=3, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    reply = loaded.generate([photo], ["What color is the bus?"], max_new_tokens=3)[0]
    assert isinstance(reply.text, str) and 0.0 <= reply.confidence <= 1.0
