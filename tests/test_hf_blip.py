"""BlipCaptioner and BlipVQA on tiny random BLIP models saved to disk and loaded back."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_blip, test_image
from vpagent.tools.hf.blip import BlipCaptioner, BlipVQA

pytestmark = pytest.mark.hf

IMAGES = [test_image(seed=s, height=40 + 8 * s) for s in range(3)]


@pytest.fixture(scope="module")
def captioner(tmp_path_factory):
    path = build_blip(tmp_path_factory.mktemp("blip"), task="caption")
    return BlipCaptioner(str(path), device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def vqa(tmp_path_factory):
    path = build_blip(tmp_path_factory.mktemp("blipvqa"), task="vqa")
    return BlipVQA(str(path), device="cpu", max_new_tokens=5)


def test_caption_is_text(captioner):
    caption = captioner.caption(IMAGES[0])
    assert isinstance(caption, str)
    assert captioner.caption_batch([]) == []
    assert captioner.info().role == "captioner"


def test_caption_batched_equals_unbatched(captioner):
    captions = captioner.caption_batch(IMAGES)
    assert captions == [captioner.caption(image) for image in IMAGES]
    assert len(set(captions)) > 1  # the tiny model's captions depend on the image


def test_caption_with_prompt(captioner):
    prompted = BlipCaptioner(captioner.model, device="cpu", max_new_tokens=4, prompt="a photo of")
    captions = prompted.caption_batch(IMAGES[:2])
    assert len(captions) == 2 and all(c.startswith("a photo of") for c in captions)


def test_vqa_answers_are_text(vqa):
    answer = vqa.answer(IMAGES[0], "what color is the car?")
    assert isinstance(answer, str)
    assert vqa.info().role == "vqa" and vqa.info().backend == "blip-vqa"


def test_vqa_batched_equals_unbatched_with_mixed_lengths(vqa):
    images = [*IMAGES, test_image(seed=7)]
    questions = [
        "what is in the image?",
        "how many cats are there in the picture?",
        "red?",
        "what is in the picture?",  # as many tokens as the first: decoded in one group with it
    ]
    batched = vqa.answer_batch(images, questions)
    assert batched == [vqa.answer(image, q) for image, q in zip(images, questions, strict=True)]
    assert len(set(batched)) > 1  # the tiny model's answers depend on the input


def test_vqa_single_matches_transformers_generate(vqa):
    """Our masked decoding equals transformers' generate when there is no padding."""
    import torch

    vqa.load()
    question = "what color is the car?"
    inputs = vqa._processor(images=[test_image()], text=question, return_tensors="pt")
    with torch.inference_mode():
        ids = vqa._net.generate(**inputs, max_new_tokens=5, do_sample=False, num_beams=1)
    expected = " ".join(vqa._processor.batch_decode(ids, skip_special_tokens=True)[0].split())
    assert vqa.answer(test_image(), question) == expected
