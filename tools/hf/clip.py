"""CLIP / SigLIP image-text matcher (transformers).

``ClipMatcher("openai/clip-vit-base-patch32")`` or a local folder written by
``save_pretrained``. The architecture comes from the folder's config: CLIP-like models score a
set of texts with a softmax over them (the texts compete), SigLIP models with an independent
sigmoid per text (each score is a calibrated yes/no).

Batching: one forward pass embeds every image of the batch and the union of all their texts;
each image then reads the logits of its own texts.
"""

from __future__ import annotations

from typing import Any

from vpagent.tools.hf._base import LazyBackend, check_lengths, to_pil
from vpagent.tools.roles import Image, Matcher

SIGMOID_MODEL_TYPES = frozenset({"siglip", "siglip2"})


class ClipMatcher(LazyBackend, Matcher):
    """Image-text similarity with a CLIP or SigLIP checkpoint.

    Options: ``dtype`` (see tools.hf._base), ``max_text_length`` (SigLIP pads texts to it; 64).
    """

    backend = "clip"

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained("AutoProcessor", "AutoModel")
        self._net = model.to(self.device).eval()
        self._sigmoid = model.config.model_type in SIGMOID_MODEL_TYPES
        return source

    def _text_kwargs(self) -> dict[str, Any]:
        if self._sigmoid:  # SigLIP was trained on texts padded to max_length
            return {
                "padding": "max_length",
                "max_length": int(self.options.get("max_text_length", 64)),
            }
        return {"padding": True}

    def score_batch(self, images: list[Image], texts: list[list[str]]) -> list[list[float]]:
        check_lengths("score_batch", images, texts)
        if not images:
            return []
        import torch

        self.load()
        vocabulary = list(dict.fromkeys(t for per_image in texts for t in per_image))
        if not vocabulary:
            return [[] for _ in images]
        column = {text: i for i, text in enumerate(vocabulary)}
        with self._lock, torch.inference_mode():
            inputs = self._processor(
                images=[to_pil(image) for image in images],
                text=vocabulary,
                return_tensors="pt",
                truncation=True,
                **self._text_kwargs(),
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            logits = self._net(**inputs).logits_per_image.float()  # (images, vocabulary)
        results = []
        for row, per_image in zip(logits, texts, strict=True):
            if not per_image:
                results.append([])
                continue
            picked = row[[column[t] for t in per_image]]
            probs = torch.sigmoid(picked) if self._sigmoid else torch.softmax(picked, dim=-1)
            results.append([float(p) for p in probs.cpu()])
        return results
