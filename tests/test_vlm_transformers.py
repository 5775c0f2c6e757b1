"""The ``vlm`` backend on tiny random LLaVA and Idefics3 (SmolVLM) models saved and loaded back."""

from __future__ import annotations

import threading

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import test_image
from tests.fixtures.vlm_tiny import build_idefics3, build_llava
from vpagent.config import load_settings
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf.vlm import TransformersVLM
from vpagent.tools.registry import build_specialist, is_vlm_backed
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.vlm_roles import forget_engines

pytestmark = pytest.mark.hf

IMAGES = [test_image(seed=s, height=40 + 8 * s) for s in range(3)]
QUESTIONS = ["what color is the car?", "how many dogs are there in the picture?", "red?"]
# Clearly different pictures: black, white, a grey ramp.
DISTINCT = [
    np.zeros((40, 40, 3), np.uint8),
    np.full((40, 60, 3), 255, np.uint8),
    np.tile(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 1, 3)),
]
BUILDERS = {"llava": build_llava, "idefics3": build_idefics3}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def model_dir(request, tmp_path_factory):
    return str(BUILDERS[request.param](tmp_path_factory.mktemp(request.param)))


@pytest.fixture(autouse=True)
def fresh_engines():
    forget_engines()
    yield
    forget_engines()


def _vqa(model_dir: str, **options):
    return build_specialist(
        "vqa", "vlm", model=model_dir, device="cpu", options={"max_new_tokens": 4, **options}
    )


def test_loads_through_auto_classes_with_the_chat_template(model_dir):
    engine = TransformersVLM(model_dir, device="cpu", max_new_tokens=3)
    assert not engine.loaded
    engine.load()
    assert type(engine._net).__name__ in (
        "LlavaForConditionalGeneration",
        "Idefics3ForConditionalGeneration",
    )
    text = engine._text("what is in the image?")
    assert "what is in the image?" in text and text.endswith("Assistant:")
    assert engine.describe()["weights"] == model_dir


def test_batched_equals_unbatched(model_dir):
    engine = TransformersVLM(model_dir, device="cpu", max_new_tokens=5)
    batched = engine.generate(IMAGES, QUESTIONS)  # different image sizes and prompt lengths
    alone = [engine.generate([image], [q])[0] for image, q in zip(IMAGES, QUESTIONS, strict=True)]
    assert batched == alone
    assert all(isinstance(answer, str) for answer in batched)


def test_answers_depend_on_the_image(model_dir):
    engine = TransformersVLM(model_dir, device="cpu", max_new_tokens=5)
    answers = engine.generate(DISTINCT, ["what is in the image?"] * len(DISTINCT))
    assert len(set(answers)) > 1


def test_roles_share_one_loaded_model(model_dir):
    vqa = _vqa(model_dir)
    captioner = build_specialist(
        "captioner", "vlm", model=model_dir, device="cpu", options={"max_new_tokens": 4}
    )
    matcher = build_specialist(
        "matcher", "vlm", model=model_dir, device="cpu", options={"max_new_tokens": 4}
    )
    assert vqa.engine is captioner.engine is matcher.engine
    info = vqa.info()
    assert (info.role, info.backend, info.stand_in) == ("vqa", "vlm", False)


def test_toolbox_micro_batches_concurrent_questions(model_dir):
    settings = load_settings(
        vlm={"provider": "transformers", "model": model_dir, "options": {"max_new_tokens": 4}},
        device="cpu",
        batching={"window_ms": 200, "max_batch": 8},
    )
    assert is_vlm_backed(settings.tools)
    toolbox = Toolbox(settings.toolbox_config())
    vqa = toolbox.specialist("vqa")
    expected = [vqa.answer(image, q) for image, q in zip(IMAGES, QUESTIONS, strict=True)]
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = toolbox.answer(IMAGES[i], QUESTIONS[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(IMAGES))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(toolbox._batchers["vqa"].batch_sizes) > 1
    assert [answers[i] for i in range(len(IMAGES))] == expected


def test_missing_model_folder_is_a_clear_error(tmp_path):
    vqa = _vqa(str(tmp_path / "nowhere"))
    with pytest.raises(ModelUnavailable, match="does not exist"):
        vqa.answer(IMAGES[0], "what is it?")


def test_unknown_option_is_refused(model_dir):
    with pytest.raises(ValueError, match="no option"):
        _ = _vqa(model_dir, temperature=0.7).engine


def test_a_processor_without_chat_template_uses_prompt_format(tmp_path):
    folder = build_llava(tmp_path / "plain-llava")
    (folder / "chat_template.jinja").unlink()  # like BLIP-2 / PaliGemma base checkpoints
    engine = TransformersVLM(
        str(folder), device="cpu", max_new_tokens=4, prompt_format="<image> Q: {prompt} A:"
    )
    batched = engine.generate(IMAGES[:2], QUESTIONS[:2])
    assert not engine._chat and engine._text("hi") == "<image> Q: hi A:"
    assert batched == [
        engine.generate([i], [q])[0] for i, q in zip(IMAGES[:2], QUESTIONS[:2], strict=True)
    ]
    assert "no chat template" in engine.describe()["note"]
