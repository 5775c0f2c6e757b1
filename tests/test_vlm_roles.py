"""The role layer over any VLM engine, and the ``[vlm]`` setting that fills the roles."""

from __future__ import annotations

import numpy as np
import pytest

from vpagent.config import ConfigError, load_settings
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.registry import is_vlm_backed
from vpagent.tools.roles import Matcher
from vpagent.tools.types import ToolInfo
from vpagent.tools.vlm_roles import (
    VLMVQA,
    VLMCaptioner,
    VLMEngine,
    VLMMatcher,
    clean_answer,
    yes_or_no,
)

IMAGE = np.zeros((8, 8, 3), np.uint8)


class ScriptedEngine(VLMEngine):
    backend = "scripted"

    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.prompts: list[str] = []

    def generate(self, images, prompts):
        self.prompts.extend(prompts)
        return [self.replies[i % len(self.replies)] for i in range(len(prompts))]

    def describe(self):
        return {"model": "scripted", "device": "nowhere", "note": "test engine"}


class FixedMatcher(Matcher):
    def score_batch(self, images, texts):
        return [[float(len(t)) for t in options] for options in texts]

    def info(self):
        return ToolInfo(role="matcher", backend="fixed", model="", stand_in=True)


def _role(cls, replies, **options):
    engine = ScriptedEngine(replies)
    role = type("Scripted" + cls.__name__, (cls,), {"_make_engine": lambda self: engine})
    return role(model="scripted", **options), engine


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("Yes", True), ("yes, it is.", True), ("No.", False), ("  NO - it is blue", False),
     ("True", True)],
)  # fmt: skip
def test_yes_or_no(reply, verdict):
    assert yes_or_no(reply, "b", "q?") is verdict


@pytest.mark.parametrize("reply", ["", "maybe", "I think yes", "nobody knows"])
def test_no_verdict_cannot_answer(reply):
    with pytest.raises(CannotAnswer, match="yes/no question"):
        yes_or_no(reply, "b", "q?")


def test_clean_answer():
    assert clean_answer('  "A red\n bus."  ') == "A red bus"
    assert clean_answer("3.5 m. Or so.") == "3.5 m. Or so."


def test_vqa_prompt_and_custom_template():
    vqa, engine = _role(VLMVQA, ["A frisbee."])
    assert vqa.answer(IMAGE, " What is the dog holding? ") == "A frisbee"
    assert engine.prompts == [
        "What is the dog holding? Answer with a single word or a short phrase."
    ]
    custom, engine = _role(VLMVQA, ["blue"], vqa_prompt="Q: {question}\nA:")
    custom.answer(IMAGE, "colour?")
    assert engine.prompts == ["Q: colour?\nA:"]


def test_caption_and_empty_answers():
    captioner, engine = _role(VLMCaptioner, ["Two dogs on grass."])
    assert captioner.caption_batch([IMAGE, IMAGE]) == ["Two dogs on grass", "Two dogs on grass"]
    assert "Describe" in engine.prompts[0]
    empty, _ = _role(VLMVQA, [""])
    with pytest.raises(CannotAnswer, match="empty answer"):
        empty.answer(IMAGE, "what?")


def test_matcher_verifies_with_the_vlm_and_scores_with_its_base():
    matcher, engine = _role(VLMMatcher, ["No.", "Yes."])
    matcher._base = FixedMatcher()
    assert matcher.verify_batch([IMAGE, IMAGE], ["car", "dog"], ["red", "sitting"]) == [False, True]
    assert engine.prompts == [
        "Is the car in the image red? Answer yes or no.",
        "Is the dog in the image sitting? Answer yes or no.",
    ]
    assert matcher.best_match(IMAGE, ["a", "a long option", "mid"]) == 1
    info = matcher.info()
    assert info.role == "matcher" and "verify_property asks the VLM" in info.note


def test_vlm_setting_fills_unset_roles_and_wraps_the_matcher():
    settings = load_settings(
        profile="hf",
        vlm={"provider": "ollama", "model": "gemma3:4b"},
        tools={"captioner": {"backend": "blip", "model": "Salesforce/blip-image-captioning-base"}},
    )
    assert (settings.tools.vqa.backend, settings.tools.vqa.model) == ("openai-vlm", "gemma3:4b")
    assert settings.tools.vqa.options["base_url"] == "http://127.0.0.1:11434/v1"
    assert settings.tools.captioner.backend == "blip"  # set explicitly: kept
    matcher = settings.tools.matcher
    assert matcher.backend == "openai-vlm"
    assert matcher.options["base_backend"] == "clip"
    assert matcher.options["base_model"] == "openai/clip-vit-large-patch14"
    assert is_vlm_backed(settings.tools) and not is_vlm_backed(load_settings().tools)


def test_vlm_roles_can_be_limited_and_env_works(monkeypatch):
    settings = load_settings(vlm={"provider": "transformers", "model": "/m", "roles": ["vqa"]})
    assert settings.tools.vqa.backend == "vlm"
    assert settings.tools.captioner.backend == "scene-description"
    assert settings.tools.matcher.backend == "classifier-minilm"
    monkeypatch.setenv("VPAGENT_VLM__PROVIDER", "embedded-gguf")
    monkeypatch.setenv("VPAGENT_VLM__MODEL", "my-vlm")
    settings = load_settings()
    assert settings.tools.captioner.backend == "llamacpp-vlm"
    assert settings.tools.captioner.model == "my-vlm"


@pytest.mark.parametrize(
    ("vlm", "message"),
    [
        ({"provider": "openai", "model": "m"}, "base_url is required"),
        ({"provider": "transformers"}, "vlm.model is required"),
        ({"provider": "cloud"}, "vlm.provider"),
        ({"provider": "ollama", "colour": 1}, "vlm.colour"),
        ({"provider": "transformers", "model": "m", "base_url": "http://x"}, "openai and ollama"),
        ({"provider": "ollama", "roles": ["ocr"]}, "vlm.roles"),
    ],
)
def test_bad_vlm_settings_name_the_key(vlm, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(vlm=vlm)
