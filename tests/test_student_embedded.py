"""The embedded student on a tiny random Llama: model, training, resume, eval, serving.

The image side is the real packaged EfficientNet-Lite3 encoder; the language model is a tiny
random-init Llama the tests build (the real SmolLM2 GGUF is exercised in a slow test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from vpagent.distill.student.train import COMPLETE, TrainOptions, train
from vpagent.student.base import StudentError
from vpagent.student.encoder import FeatureEncoder
from vpagent.student.feature_maps import FEATURE_DIM, NUM_IMAGE_TOKENS
from vpagent.student.model import StudentConfig, StudentForConditionalGeneration
from vpagent.student.students import EmbeddedStudent, load_student

OVERFIT = {"lr": 5e-3, "batch_size": 8, "lora": False}


class KillAt(TrainerCallback):
    """Stops training at a step the way Ctrl-C or a kill does: mid-run, no clean-up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, lm_folder: Path, export: Path) -> dict:
    """A run killed at step 3 (after the checkpoint at step 2), then resumed to step 6."""
    out = tmp_path_factory.mktemp("run") / "ckpt"
    options = TrainOptions(
        data=export, out=out, student=str(lm_folder), max_steps=6, save_steps=2, **OVERFIT
    )
    with pytest.raises(KeyboardInterrupt):
        train(options, progress=False, callbacks=[KillAt(3)])
    torn = out / "checkpoints" / "checkpoint-4"  # as if killed while writing the next one
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half")
    resumed = train(options.model_copy(update={"resume": True}), progress=False)
    return {"out": out, "resumed": resumed, "torn": torn}


def test_encoder_gives_81_tokens_and_caches_by_content(tmp_path: Path, images_dir: Path) -> None:
    encoder = FeatureEncoder(cache_dir=tmp_path)
    photo = images_dir / "two_dogs.jpg"
    features = encoder.encode(photo)
    assert features.shape == (NUM_IMAGE_TOKENS, FEATURE_DIM) and features.dtype == np.float32
    assert features.min() >= 0.0 and features.max() <= 1.0 and features.std() > 0
    assert len(list(tmp_path.rglob("*.npy"))) == 1
    again = FeatureEncoder(cache_dir=tmp_path).encode(photo)  # read back from disk
    np.testing.assert_array_equal(features, again)
    other = encoder.encode(images_dir / "bus.jpg")
    assert not np.allclose(features, other)


def test_model_round_trip_generate_and_lora_merge(tmp_path: Path, lm_folder: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForImageTextToText

    student = EmbeddedStudent.build(str(lm_folder))
    model = student.model.eval()
    ids = torch.tensor([[1] + [student.processor.image_token_id] * NUM_IMAGE_TOKENS + [7, 8]])
    features = torch.rand(1, NUM_IMAGE_TOKENS, FEATURE_DIM)
    before = model(input_ids=ids, image_features=features).logits
    student.save(tmp_path / "s")
    assert isinstance(AutoConfig.from_pretrained(tmp_path / "s"), StudentConfig)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path / "s").eval()
    assert isinstance(loaded, StudentForConditionalGeneration)
    torch.testing.assert_close(loaded(input_ids=ids, image_features=features).logits, before)
    # the image features matter: other features, other logits
    other = loaded(input_ids=ids, image_features=torch.rand_like(features)).logits
    assert not torch.allclose(other, before)

    out = loaded.generate(
        input_ids=ids, image_features=features, attention_mask=torch.ones_like(ids),
        max_new_tokens=4, do_sample=False, min_new_tokens=4,
    )  # fmt: skip
    assert out.shape[1] == ids.shape[1] + 4

    peft = get_peft_model(
        loaded, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["projector"])
    )
    for name, parameter in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)
    adapted = peft(input_ids=ids, image_features=features).logits
    assert not torch.allclose(adapted, before)
    merged = peft.merge_and_unload()
    assert isinstance(merged, StudentForConditionalGeneration)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    torch.testing.assert_close(merged(input_ids=ids, image_features=features).logits, adapted)


def test_loss_falls_and_resume_continues_from_the_checkpoint(trained: dict) -> None:
    resumed = trained["resumed"]
    assert resumed.resumed_from == 2 and resumed.steps == 6
    assert [step for step, _ in resumed.losses] == [3, 4, 5, 6]  # steps 1-2 not redone
    # the torn checkpoint-4 was pruned (not resumed from), then written whole by the new run
    assert (trained["torn"] / "model.safetensors").read_bytes() != b"half"
    metrics = json.loads((trained["out"] / "train_metrics.json").read_text())
    assert metrics["steps"] == 6
    losses = [loss for _, loss in resumed.losses]
    assert losses[-1] < losses[0]
    checkpoints = sorted((trained["out"] / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == ["checkpoint-4", "checkpoint-6"]
    assert all((p / COMPLETE).is_file() for p in checkpoints)


def test_overfit_loss_falls_from_the_start(tmp_path: Path, lm_folder: Path, export: Path) -> None:
    result = train(
        TrainOptions(data=export, out=tmp_path / "o", student=str(lm_folder), max_steps=5,
                     save_steps=100, **OVERFIT),
        progress=False,
    )  # fmt: skip
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 5 and losses[-1] < losses[0] - 0.3
    assert result.samples_per_second > 0 and result.data["tasks"] == {"answer": 4, "rationale": 4}


def test_trained_student_loads_and_answers(trained: dict, images_dir: Path) -> None:
    student = load_student(trained["out"])
    replies = student.generate(
        [images_dir / "two_dogs.jpg"], ["How many dogs are there?"], max_new_tokens=6
    )
    assert isinstance(replies[0].text, str) and 0.0 <= replies[0].confidence <= 1.0


def test_bad_inputs_are_clear_errors(
    tmp_path: Path, lm_folder: Path, export: Path, trained: dict
) -> None:
    broken = tmp_path / "no-images"
    broken.mkdir()
    (broken / "train.jsonl").write_text((export / "train.jsonl").read_text())
    with pytest.raises(StudentError, match="missing under"):
        train(TrainOptions(data=broken, out=tmp_path / "x", student=str(lm_folder)))
    with pytest.raises(StudentError, match="no train records"):
        train(TrainOptions(data=tmp_path / "nothing", out=tmp_path / "y"))
    with pytest.raises(StudentError, match="already holds a trained student"):
        train(TrainOptions(data=export, out=trained["out"], student=str(lm_folder)))
    with pytest.raises(StudentError, match="another student"):
        train(
            TrainOptions(data=export, out=trained["out"], student=str(lm_folder), lora=True,
                         resume=True),
            progress=False,
        )  # fmt: skip
    with pytest.raises(StudentError, match="not a student"):
        load_student(lm_folder)  # a plain causal LM is no student checkpoint


@pytest.mark.heavy  # trains the real packaged student for a few steps: about a minute
def test_real_embedded_student_trains_and_loss_falls(tmp_path: Path, export: Path) -> None:
    """The default student: SmolLM2-135M from its packaged GGUF, LoRA, 3 steps on 8 records."""
    pytest.importorskip("gguf")
    result = train(
        TrainOptions(data=export, out=tmp_path / "ckpt", max_steps=3, batch_size=8, lr=2e-3,
                     save_steps=100),
        progress=False,
    )  # fmt: skip
    losses = [loss for _, loss in result.losses]
    assert len(losses) == 3 and losses[-1] < losses[0]
    student = load_student(tmp_path / "ckpt")
    assert student.model.config.text_config.model_type == "llama"
    assert student.model.config.text_config.num_hidden_layers == 30  # SmolLM2-135M
