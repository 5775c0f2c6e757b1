"""Any transformers image-text-to-text model as the vqa, captioner and matcher backend ``vlm``.

``[tools.vqa] backend = "vlm"``, ``model = "HuggingFaceTB/SmolVLM-256M-Instruct"`` (or
Qwen2-VL / Qwen2.5-VL, LLaVA, PaliGemma, BLIP-2, ... any ``AutoModelForImageTextToText``
checkpoint), a hub id in the local cache or a folder written by ``save_pretrained``.

The prompt comes from the processor's chat template (one user turn: the image, then the
text). A processor without a template (BLIP-2, PaliGemma base checkpoints) gets the text
formatted by the option ``prompt_format`` (default ``"Question: {prompt} Answer:"``) and
inserts its image tokens itself. On CUDA the model runs in bfloat16 where the GPU supports it
(float16 otherwise), on the CPU in float32; option ``dtype`` overrides.

Batching: one ``generate`` call per batch from the toolbox's micro-batcher, prompts padded
on the left so every row's answer starts at the same position; greedy decoding, so a batched
answer equals the one asked alone (up to floating-point ties). Options: ``max_new_tokens``
(32), ``dtype``, ``prompt_format``, plus the prompt options of :mod:`vpagent.tools.vlm_roles`. The
vqa, captioner and matcher roles of one configuration share one loaded model.
"""

from __future__ import annotations

from typing import Any

from vpagent.tools.hf._base import LazyBackend, resolve_dtype, to_pil
from vpagent.tools.roles import Image
from vpagent.tools.vlm_roles import (
    ROLE_OPTIONS,
    VLMVQA,
    VLMCaptioner,
    VLMEngine,
    VLMMatcher,
    VLMRole,
    shared_engine,
)

DEFAULT_PROMPT_FORMAT = "Question: {prompt} Answer:"
ENGINE_OPTIONS = frozenset({"max_new_tokens", "dtype", "prompt_format"})


class TransformersVLM(LazyBackend, VLMEngine):
    """One loaded image-text-to-text model answering batches of (image, prompt) pairs."""

    backend = "vlm"

    def __init__(self, model: str, device: str = "auto", **options: Any) -> None:
        unknown = set(options) - ENGINE_OPTIONS
        if unknown:
            raise ValueError(
                f"the vlm backend has no option(s) {sorted(unknown)}; "
                f"options: {sorted(ENGINE_OPTIONS | ROLE_OPTIONS)}"
            )
        super().__init__(model, device, **options)
        self.max_new_tokens = int(options.get("max_new_tokens", 32))
        self.prompt_format = str(options.get("prompt_format", DEFAULT_PROMPT_FORMAT))
        self._chat = False

    @property
    def dtype(self) -> Any:
        if self.options.get("dtype") in (None, "auto") and self.device.startswith("cuda"):
            import torch

            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return resolve_dtype(self.device, self.options.get("dtype"))

    def _load(self) -> str:
        source, processor, model = self._from_pretrained(
            "AutoProcessor", "AutoModelForImageTextToText"
        )
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ValueError(f"vlm: the processor of {self.model!r} has no tokenizer")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._processor = processor
        self._chat = bool(getattr(processor, "chat_template", None))
        self._net = model.to(self.device).eval()
        config = model.config
        text_config = getattr(config, "text_config", None)
        self._encoder_decoder = bool(
            getattr(config, "is_encoder_decoder", False)
            or getattr(text_config, "is_encoder_decoder", False)
        )
        return source

    def _text(self, prompt: str) -> str:
        if not self._chat:
            return self.prompt_format.format(prompt=prompt)
        messages = [
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}
        ]
        return self._processor.apply_chat_template(messages, add_generation_prompt=True)

    def generate(self, images: list[Image], prompts: list[str]) -> list[str]:
        if len(images) != len(prompts):
            raise ValueError("generate: one prompt per image")
        if not images:
            return []
        import torch

        self.load()
        pictures = [to_pil(image) for image in images]
        with self._lock, torch.inference_mode():
            texts = [self._text(prompt) for prompt in prompts]
            inputs = self._processor(
                text=texts,
                images=[[p] for p in pictures] if self._chat else pictures,
                return_tensors="pt",
                padding=True,
            ).to(self.device, dtype=self.dtype)
            ids = self._net.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=self._processor.tokenizer.pad_token_id,
            )
            if not self._encoder_decoder:
                ids = ids[:, inputs["input_ids"].shape[1] :]
            texts = self._processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(text.split()) for text in texts]

    def describe(self) -> dict[str, Any]:
        note = "image-text-to-text model (transformers)"
        if self.loaded and not self._chat:
            note += f"; no chat template, prompts formatted as {self.prompt_format!r}"
        if not self.loaded:
            note += " (not loaded yet)"
        return {
            "model": self.model,
            "weights": self._weights,
            "device": self._device or self.requested_device,
            "note": note,
        }


class _TransformersRole(VLMRole):
    backend = "vlm"

    def _make_engine(self) -> VLMEngine:
        if not self.model:
            raise ValueError("the vlm backend needs a model: a hub id or a local folder")
        options = {k: v for k, v in self.options.items() if k not in ROLE_OPTIONS}
        key = ("vlm", self.model, self.device, tuple(sorted(options.items())))
        return shared_engine(key, lambda: TransformersVLM(self.model, self.device, **options))


class TransformersVLMVQA(_TransformersRole, VLMVQA):
    """``simple_query`` by a transformers VLM."""


class TransformersVLMCaptioner(_TransformersRole, VLMCaptioner):
    """``caption`` by a transformers VLM."""


class TransformersVLMMatcher(_TransformersRole, VLMMatcher):
    """``verify_property`` by a transformers VLM (scores from a base matcher)."""
