"""BLIP captioning and visual question answering (transformers).

``BlipCaptioner("Salesforce/blip-image-captioning-base")`` and
``BlipVQA("Salesforce/blip-vqa-base")``, or local folders written by ``save_pretrained``.

Batching: captions come from one ``generate`` call for the whole batch. For VQA the vision
encoder runs once for the whole batch; the question encoder and answer decoder run once per
group of questions of equal token length. The reason: in transformers 5.x the BLIP text
cross-attention drops its ``encoder_attention_mask`` (checked on 5.24: ``BlipTextAttention``
passes it on as ``attention_mask``, which ``BlipTextSelfAttention`` replaces with the
missing ``encoder_attention_mask`` when it attends across), so the answer decoder would
attend to the padding of shorter questions and a question could be answered differently
alone than in a mixed-length batch. Equal-length groups need no padding: answers are exact.
"""

from __future__ import annotations

from typing import Any

from vpagent.tools.hf._base import LazyBackend, check_lengths, to_pil
from vpagent.tools.roles import VQA, Captioner, Image


class _BlipBase(LazyBackend):
    model_class: str = ""

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained("AutoProcessor", self.model_class)
        self._net = model.to(self.device).eval()
        return source

    def _generate_kwargs(self, default_tokens: int) -> dict[str, Any]:
        return {
            "max_new_tokens": int(self.options.get("max_new_tokens", default_tokens)),
            "num_beams": int(self.options.get("num_beams", 1)),
            "do_sample": False,
        }

    def _pixels(self, images: list[Image]) -> Any:
        pixels = self._processor.image_processor(
            images=[to_pil(image) for image in images], return_tensors="pt"
        ).pixel_values
        return pixels.to(self.device, self.dtype)

    def _decode(self, ids: Any) -> list[str]:
        texts = self._processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]


class BlipCaptioner(_BlipBase, Captioner):
    """Image captioning with ``BlipForConditionalGeneration``.

    Options: ``prompt`` (text the caption continues, e.g. "a picture of"; none by default),
    ``max_new_tokens`` (30), ``num_beams`` (1), ``dtype``.
    """

    backend = "blip"
    model_class = "BlipForConditionalGeneration"

    def caption_batch(self, images: list[Image]) -> list[str]:
        if not images:
            return []
        import torch

        self.load()
        with self._lock, torch.inference_mode():
            pixels = self._pixels(images)
            kwargs: dict[str, Any] = {}
            prompt = self.options.get("prompt")
            if prompt:
                text = self._processor.tokenizer([prompt] * len(images), return_tensors="pt")
                kwargs = {
                    "input_ids": text.input_ids.to(self.device),
                    "attention_mask": text.attention_mask.to(self.device),
                }
            ids = self._net.generate(pixel_values=pixels, **kwargs, **self._generate_kwargs(30))
        return self._decode(ids)


class BlipVQA(_BlipBase, VQA):
    """Visual question answering with ``BlipForQuestionAnswering``.

    Options: ``max_new_tokens`` (10), ``num_beams`` (1), ``dtype``.
    """

    backend = "blip-vqa"
    model_class = "BlipForQuestionAnswering"

    def answer_batch(self, images: list[Image], questions: list[str]) -> list[str]:
        check_lengths("answer_batch", images, questions)
        if not images:
            return []
        import torch

        self.load()
        net = self._net
        tokenizer = self._processor.tokenizer
        token_ids = tokenizer(list(questions), truncation=True)["input_ids"]
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(token_ids):
            groups.setdefault(len(ids), []).append(i)
        answers: list[str] = [""] * len(images)
        with self._lock, torch.inference_mode():
            image_embeds = net.vision_model(pixel_values=self._pixels(images))[0]
            for members in groups.values():
                input_ids = torch.tensor([token_ids[i] for i in members], device=self.device)
                embeds = image_embeds[members]
                question_embeds = net.text_encoder(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    encoder_hidden_states=embeds,
                    encoder_attention_mask=torch.ones(
                        embeds.shape[:-1], dtype=torch.long, device=self.device
                    ),
                    return_dict=False,
                )[0]
                start = torch.full(
                    (len(members), 1),
                    net.decoder_start_token_id,
                    dtype=torch.long,
                    device=self.device,
                )
                ids = net.text_decoder.generate(
                    input_ids=start,
                    eos_token_id=net.config.text_config.sep_token_id,
                    pad_token_id=net.config.text_config.pad_token_id,
                    encoder_hidden_states=question_embeds,
                    encoder_attention_mask=torch.ones_like(input_ids),
                    **self._generate_kwargs(10),
                )
                for i, text in zip(members, self._decode(ids), strict=True):
                    answers[i] = text
        return answers
