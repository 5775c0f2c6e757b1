"""Students: one interface over the embedded student and transformers image-text-to-text VLMs.

A :class:`Student` turns (image, prompt, target) into a training example, batches examples,
generates answers with a confidence (the mean probability of the generated tokens) and saves
itself as a folder ``load_student`` reads back. :func:`new_student` resolves ``--student``:

- ``embedded`` (default) or a model pack name (``smollm2-135m``, ``qwen2.5-coder-0.5b``): a new
  embedded student on that packaged language model;
- a hub id / local folder of a causal LM: a new embedded student on it;
- a hub id / local folder of an image-text-to-text model (SmolVLM/Idefics3, Qwen2-VL,
  PaliGemma, LLaVA, ...): that VLM with its own processor;
- a saved student (``model_type = vpagent_student``): that student, to train further.

``eyes`` (embedded students only) chooses what a new student sees (``eyes.py``): ``grid`` (the
81 feature-map tokens), ``grid+regions`` (plus the offline detector's region tokens),
``stages`` (several EfficientNet stages per token) or ``grid+ssd`` (plus the SSD-MobileNet's
feature maps per token); a saved student keeps its own, and a loaded one is given the inputs
its config names.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpagent.images import load_image
from vpagent.llm import packs
from vpagent.student.base import DEFAULT_LANGUAGE_MODEL, StudentError, load_language_model
from vpagent.student.eyes import (
    GRID_EYES,
    REGION_EYES,
    encoder_for,
    has_image_tokens,
    reads_scene_text,
    require_models,
)
from vpagent.student.model import MODEL_TYPE, StudentConfig, StudentForConditionalGeneration
from vpagent.student.processor import IGNORE_INDEX, StudentProcessor
from vpagent.student.regions import RegionDetector
from vpagent.student.scene_text import SceneText, default_cache_dir, with_scene

EMBEDDED = "embedded"
NO_ENCODER = "none"  # image_encoder of a student that reads the scene text alone
HF_SCENE = "scene"  # an image-text-to-text student's scene text: the same as the scene eyes'
STUDENT_FILE = "vpagent_student.json"  # what a saved student is: kind and base model
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass
class Generation:
    """A generated reply and the mean probability of its tokens."""

    text: str
    confidence: float


class Student(ABC):
    """A trainable, savable vision-language model with its input processing."""

    kind: str
    model: Any
    base: str

    @property
    def model_type(self) -> str:
        return str(self.model.config.model_type)

    @abstractmethod
    def training_example(
        self, image: np.ndarray | Path, prompt: str, target: str
    ) -> dict[str, Any]:
        """One record (an RGB uint8 image or an image file) as the collator's input."""

    @abstractmethod
    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """A padded training batch with labels masked outside the target."""

    @abstractmethod
    def _prompt_inputs(self, images: list[np.ndarray], prompts: list[str]) -> dict[str, Any]:
        """A left-padded batch of prompts for ``generate``."""

    @abstractmethod
    def _save_processor(self, folder: Path) -> None: ...

    @abstractmethod
    def decode(self, ids: torch.Tensor) -> str: ...

    @property
    def eyes(self) -> str | None:
        """What the embedded student sees (``eyes.py``); None: its own vision tower."""
        return None

    @property
    def lora_targets(self) -> str | list[str]:
        """The language model's attention projections."""
        return list(ATTENTION_PROJECTIONS)

    @property
    def modules_to_save(self) -> list[str]:
        """Modules trained in full next to LoRA."""
        return []

    def save(self, folder: Path) -> None:
        """Model, processor/tokenizer and ``vpagent_student.json`` into ``folder``."""
        self.model.save_pretrained(folder)
        self._save_processor(folder)
        meta = {"kind": self.kind, "base": self.base, "model_type": self.model_type}
        if self.eyes is not None:
            meta["eyes"] = self.eyes
        (Path(folder) / STUDENT_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @torch.inference_mode()
    def generate(
        self, images: list[np.ndarray], prompts: list[str], *, max_new_tokens: int = 32
    ) -> list[Generation]:
        """Greedy replies to ``prompts`` about ``images``, with their confidence."""
        model = self.model
        inputs = self._prompt_inputs(images, prompts)
        inputs = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in inputs.items()}
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=self.pad_token_id,
        )
        start = inputs["input_ids"].shape[1]
        new_tokens = output.sequences[:, start:]
        scores = model.compute_transition_scores(
            output.sequences, output.scores, normalize_logits=True
        )
        results = []
        for row in range(new_tokens.shape[0]):
            keep = _until_end(new_tokens[row], self.end_token_ids)
            text = self.decode(new_tokens[row, :keep]).strip()
            logprobs = scores[row, :keep].float()
            confidence = math.exp(float(logprobs.mean())) if keep else 0.0
            results.append(Generation(text=text, confidence=confidence))
        return results

    @property
    @abstractmethod
    def pad_token_id(self) -> int: ...

    @property
    def end_token_ids(self) -> set[int]:
        config = self.model.generation_config
        ends = config.eos_token_id
        ids = set(ends if isinstance(ends, list) else [ends] if ends is not None else [])
        return ids | {self.pad_token_id}


def _until_end(tokens: torch.Tensor, ends: set[int]) -> int:
    for index, token in enumerate(tokens.tolist()):
        if token in ends:
            return index
    return len(tokens)


class EmbeddedStudent(Student):
    """Frozen image features (its eyes) -> MLP projector -> causal LM (``model.py``)."""

    kind = EMBEDDED

    def __init__(
        self, model: StudentForConditionalGeneration, processor: StudentProcessor, base: str
    ) -> None:
        self.model = model
        self.processor = processor
        self.base = base

    @classmethod
    def build(cls, language_model: str, eyes: str = GRID_EYES, **config: Any) -> EmbeddedStudent:
        """A new student on a causal LM (pack name, hub id or folder), projector untrained."""
        require_models(eyes)
        lm, tokenizer = load_language_model(language_model)
        encoder = encoder_for(eyes, cache_dir=feature_cache_dir())
        processor = StudentProcessor(tokenizer, encoder, scene=scene_reader(eyes))
        if len(tokenizer) > lm.get_input_embeddings().weight.shape[0]:
            lm.resize_token_embeddings(len(tokenizer))
        features: dict[str, Any] = {"image_encoder": NO_ENCODER}
        if encoder is not None:
            features = {"vision_feature_dim": encoder.feature_dim, "image_encoder": encoder.name}
        model = StudentForConditionalGeneration.from_language_model(
            lm, image_token_id=processor.image_token_id, eyes=eyes, **features, **config
        )
        model.generation_config = lm.generation_config
        processor.regions = region_detector(model.config)
        return cls(model, processor, language_model)

    @property
    def eyes(self) -> str:
        return str(self.model.config.eyes)

    @property
    def modules_to_save(self) -> list[str]:
        """The projector (unless the scene text is all it reads), and the region embeddings of
        a grid+regions student."""
        if not has_image_tokens(self.eyes):
            return []
        return ["projector"] + (["region_embedding"] if self.eyes == REGION_EYES else [])

    def training_example(
        self, image: np.ndarray | Path, prompt: str, target: str
    ) -> dict[str, Any]:
        return self.processor.training_example(image, prompt, target)

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.processor.collate(examples)

    def _prompt_inputs(self, images: list[np.ndarray], prompts: list[str]) -> dict[str, Any]:
        return self.processor.prompt_inputs(images, prompts)

    def _save_processor(self, folder: Path) -> None:
        self.processor.save_pretrained(folder)

    def decode(self, ids: torch.Tensor) -> str:
        return self.processor.decode(ids)

    @property
    def pad_token_id(self) -> int:
        return int(self.processor.tokenizer.pad_token_id)


def region_detector(config: StudentConfig) -> RegionDetector | None:
    """The region detector a student's config asks for; None for grid eyes."""
    if config.eyes != REGION_EYES:
        return None
    return RegionDetector(config.num_regions, config.region_score_threshold)


def feature_cache_dir() -> Path:
    """``<cache>/students/features``: frozen image features shared by every run on this
    machine (keyed by the photo's content and the encoder's name), so an epoch or a second
    run does not compute them again."""
    from vpagent.offline_env import cache_root

    return cache_root() / "students" / "features"


def scene_reader(eyes: str) -> SceneText | None:
    """The scene text of the scene eyes (cached on disk under the vpagent cache); else None."""
    return SceneText(eyes, cache_dir=default_cache_dir()) if reads_scene_text(eyes) else None


def saved_processor(tokenizer: Any, config: StudentConfig) -> StudentProcessor:
    """The processor of a saved student: the encoder, detector and scene text its config names."""
    require_models(config.eyes)
    encoder = encoder_for(config.eyes, cache_dir=feature_cache_dir())
    scene = scene_reader(config.eyes)
    if encoder is None:
        return StudentProcessor(tokenizer, None, scene=scene)
    if (encoder.name, encoder.feature_dim) != (config.image_encoder, config.vision_feature_dim):
        raise StudentError(
            f"the student's projector reads {config.vision_feature_dim} features per image token "
            f"of {config.image_encoder}, but its {config.eyes!r} eyes give {encoder.feature_dim} "
            f"of {encoder.name}"
        )
    return StudentProcessor(tokenizer, encoder, regions=region_detector(config), scene=scene)


class HFStudent(Student):
    """Any transformers image-text-to-text model with its processor's chat template.

    PaliGemma has no chat template: its processor takes the prompt as prefix and the target as
    ``suffix`` and builds the labels itself.
    """

    kind = "hf"

    def __init__(
        self, model: Any, processor: Any, base: str, scene: SceneText | None = None
    ) -> None:
        self.model = model
        self.processor = processor
        self.base = base
        self.scene = scene  # the scene text before every prompt (``--scene-text``), or None
        self.tokenizer = processor.tokenizer
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.uses_suffix = self.model_type == "paligemma"
        if not self.uses_suffix and getattr(processor, "chat_template", None) is None:
            raise StudentError(f"the processor of {base!r} has no chat template")

    @classmethod
    def load(cls, spec: str, **kwargs: Any) -> HFStudent:
        """A VLM from a hub id or folder; a saved student that read the scene text reads it
        again (``vpagent_student.json``: ``scene_text``)."""
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(spec)
            model = AutoModelForImageTextToText.from_pretrained(spec, **kwargs)
        except (OSError, ValueError) as error:
            raise StudentError(f"cannot load the student {spec!r}: {error}") from error
        reads_scene = Path(spec).is_dir() and _read_meta(Path(spec)).get("scene_text", False)
        return cls(model, processor, spec, scene_reader(HF_SCENE) if reads_scene else None)

    def read_scene_text(self) -> None:
        """From now on, put the offline pack's scene text before every prompt (training and
        answering alike); saved with the student."""
        require_models(HF_SCENE)
        self.scene = scene_reader(HF_SCENE)

    def save(self, folder: Path) -> None:
        super().save(folder)
        if self.scene is not None:
            path = Path(folder) / STUDENT_FILE
            meta = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps({**meta, "scene_text": True}, indent=2), encoding="utf-8")

    def _with_scene(self, image: np.ndarray | Path, prompt: str) -> str:
        return with_scene(prompt, self.scene.describe(image) if self.scene else None)

    @property
    def _image_prefix(self) -> str:
        """PaliGemma's prompts start with its image token (the processor expands it)."""
        return str(getattr(self.processor, "image_token", "<image>"))

    @property
    def lora_targets(self) -> str:
        """Attention projections of the language model only (not the vision tower)."""
        names = "|".join(ATTENTION_PROJECTIONS)
        return rf".*(language_model|text_model)\..*({names})$"

    def _messages(self, prompt: str, target: str | None = None) -> list[dict[str, Any]]:
        user = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        if target is None:
            return [user]
        return [user, {"role": "assistant", "content": [{"type": "text", "text": target}]}]

    def _chat(self, messages: list[dict[str, Any]], generation: bool) -> str:
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation
        )

    def training_example(
        self, image: np.ndarray | Path, prompt: str, target: str
    ) -> dict[str, Any]:
        prompt = self._with_scene(image, prompt)
        image = _pil(image)
        if self.uses_suffix:
            return {"image": image, "prompt": prompt, "target": target}
        prompt_text = self._chat(self._messages(prompt), generation=True)
        full_text = self._chat(self._messages(prompt, target), generation=False)
        if not full_text.startswith(prompt_text):
            raise StudentError("the chat template does not render the prompt as a prefix")
        prompt_len = len(self.processor(text=[prompt_text], images=[[image]])["input_ids"][0])
        return {"image": image, "text": full_text, "prompt_len": prompt_len}

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images = [[e["image"]] for e in examples]
        self.tokenizer.padding_side = "right"
        if self.uses_suffix:
            return dict(
                self.processor(
                    text=[self._image_prefix + e["prompt"] for e in examples],
                    images=images,
                    suffix=[e["target"] for e in examples],
                    padding=True,
                    return_tensors="pt",
                )
            )
        batch = dict(
            self.processor(
                text=[e["text"] for e in examples], images=images, padding=True, return_tensors="pt"
            )
        )
        labels = batch["input_ids"].clone()
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        for row, example in enumerate(examples):
            labels[row, : example["prompt_len"]] = IGNORE_INDEX
        batch["labels"] = labels
        return batch

    def _prompt_inputs(self, images: list[np.ndarray], prompts: list[str]) -> dict[str, Any]:
        self.tokenizer.padding_side = "left"
        prompts = [self._with_scene(i, p) for i, p in zip(images, prompts, strict=True)]
        texts = (
            [self._image_prefix + p for p in prompts]
            if self.uses_suffix
            else [self._chat(self._messages(p), generation=True) for p in prompts]
        )
        return dict(
            self.processor(
                text=texts,
                images=[[_pil(i)] for i in images],
                padding=True,
                return_tensors="pt",
            )
        )

    def _save_processor(self, folder: Path) -> None:
        self.processor.save_pretrained(folder)

    def decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id)


def _pil(image: np.ndarray | Path) -> Any:
    from PIL import Image

    return Image.fromarray(image if isinstance(image, np.ndarray) else load_image(image))


def _model_type(spec: str) -> str:
    from transformers import AutoConfig

    try:
        return str(AutoConfig.from_pretrained(spec).model_type)
    except (OSError, ValueError) as error:
        raise StudentError(
            f"{spec!r} is neither a model pack ({', '.join(sorted(packs.PACKS))}), nor a "
            f"local model folder, nor a hub id available offline: {error}"
        ) from error


def _is_image_text_to_text(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    return model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def _is_causal_lm(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def new_student(spec: str | None = None, eyes: str | None = None) -> Student:
    """The student ``vpagent distill train --student SPEC [--eyes EYES]`` starts from.

    ``eyes`` None: grid for a new embedded student, a saved student's own otherwise.
    """
    new_eyes = eyes or GRID_EYES
    if spec is None or spec == EMBEDDED:
        return EmbeddedStudent.build(DEFAULT_LANGUAGE_MODEL, eyes=new_eyes)
    if spec in packs.PACKS:
        return EmbeddedStudent.build(spec, eyes=new_eyes)
    model_type = _model_type(spec)
    if model_type == MODEL_TYPE:
        student = load_student(spec)
        if eyes is not None and eyes != student.eyes:
            raise StudentError(
                f"{spec} is a student that sees {student.eyes!r}, not {eyes!r}: continue it "
                f"without --eyes, or start a new student with --eyes {eyes}"
            )
        return student
    if _is_image_text_to_text(model_type):
        if eyes is not None:
            raise StudentError(
                f"--eyes is for the embedded student; {spec!r} is an image-text-to-text model "
                "that sees through its own vision tower"
            )
        return HFStudent.load(spec)
    if _is_causal_lm(model_type):
        return EmbeddedStudent.build(spec, eyes=new_eyes)
    raise StudentError(
        f"{spec!r} is a {model_type!r} model: neither an image-text-to-text model nor a causal "
        "language model to build the embedded student on"
    )


def load_student(folder: str | Path, **kwargs: Any) -> Student:
    """A saved student (from ``vpagent distill train``, or any image-text-to-text model)."""
    from transformers import AutoTokenizer

    folder = str(folder)
    model_type = _model_type(folder)
    if model_type == MODEL_TYPE:
        meta = _read_meta(Path(folder))
        try:
            config = StudentConfig.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise StudentError(f"cannot load the student in {folder}: {error}") from error
        processor = saved_processor(tokenizer, config)  # a misfit is refused before the weights
        try:
            model = StudentForConditionalGeneration.from_pretrained(folder, config=config, **kwargs)
        except (OSError, ValueError, RuntimeError) as error:
            raise StudentError(f"cannot load the student in {folder}: {error}") from error
        return EmbeddedStudent(model, processor, meta.get("base", folder))
    if _is_image_text_to_text(model_type):
        return HFStudent.load(folder, **kwargs)
    raise StudentError(
        f"{folder} holds a {model_type!r} model, not a student (an embedded student or an "
        "image-text-to-text model)"
    )


def on_device(student: Student, device: str = "auto") -> Student:
    """``student`` moved to ``device``, chosen as every model backend chooses it
    (``resolve_device``: ``auto`` is CUDA where torch sees a GPU; CUDA without one is
    ModelUnavailable)."""
    from vpagent.tools.hf._base import resolve_device

    target = resolve_device(device)
    try:
        student.model.to(target)
    except RuntimeError as error:  # torch's "Expected one of cpu, cuda, ... device"
        raise StudentError(f"cannot put the student on device {device!r}: {error}") from error
    return student


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / STUDENT_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise StudentError(f"{path} is not valid JSON: {error}") from error
