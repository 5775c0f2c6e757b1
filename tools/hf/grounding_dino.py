"""Grounding DINO open-vocabulary detector (transformers).

``GroundingDinoDetector("IDEA-Research/grounding-dino-tiny")`` or a local folder. The query
names of an image become one prompt, ``"cat . red car ."``; each predicted box is scored per
name as the highest token probability inside that name's tokens, and labelled with the best
name (so a label is always one of the query names, never a fragment of the prompt).

Batching: one forward pass for all images. The processor pads images of different sizes to a
common size (with a pixel mask), as in training; the backbone still sees the padding, so a
mixed-size batch can score a little differently from one image at a time. Images of the same
size give the same results batched or not.
"""

from __future__ import annotations

from typing import Any

from vpagent.tools.hf._base import LazyBackend, check_lengths, to_pil
from vpagent.tools.hf._detect import to_detections
from vpagent.tools.roles import Detector, Image
from vpagent.tools.types import Detection


def build_prompt(names: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """``"cat . red car ."`` and the character span of each name in it."""
    prompt, spans = "", []
    for name in names:
        clean = " ".join(name.replace(".", " ").lower().split()) or "object"
        start = len(prompt)
        prompt += clean
        spans.append((start, len(prompt)))
        prompt += " . "
    return prompt.rstrip(), spans


class GroundingDinoDetector(LazyBackend, Detector):
    """Text-queried detection with Grounding DINO.

    Options: ``threshold`` (box score to keep, 0.35 as upstream), ``nms_iou`` (per-name NMS,
    0.5; None = off), ``max_detections`` (100), ``dtype``.
    """

    backend = "grounding-dino"

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained(
            "AutoProcessor", "AutoModelForZeroShotObjectDetection"
        )
        if "grounding" not in model.config.model_type:
            raise ValueError(f"{source} is a {model.config.model_type!r} model, not Grounding DINO")
        self._net = model.to(self.device).eval()
        self._max_text_len = int(getattr(model.config, "max_text_len", 256))
        return source

    def _token_spans(self, prompts: list[str], spans: list[list[tuple[int, int]]]) -> list[Any]:
        """Per image, per name, the token positions that fall inside the name's characters."""
        encoded = self._processor.tokenizer(
            prompts,
            return_offsets_mapping=True,
            padding=True,
            truncation=True,
            max_length=self._max_text_len,
        )
        result = []
        for offsets, name_spans in zip(encoded["offset_mapping"], spans, strict=True):
            positions = []
            for start, end in name_spans:
                positions.append(
                    [t for t, (a, b) in enumerate(offsets) if b > a and a >= start and b <= end]
                )
            result.append(positions)
        return result

    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        check_lengths("detect_batch", images, names)
        results: list[list[Detection]] = [[] for _ in images]
        todo = [i for i, per in enumerate(names) if per]
        if not todo:
            return results
        import torch

        self.load()
        built = [build_prompt(names[i]) for i in todo]
        prompts = [p for p, _ in built]
        token_spans = self._token_spans(prompts, [s for _, s in built])
        with self._lock, torch.inference_mode():
            inputs = self._processor(
                images=[to_pil(images[i]) for i in todo],
                text=prompts,
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self._max_text_len,
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            outputs = self._net(**inputs)
        probs = outputs.logits.float().sigmoid().cpu()  # (images, queries, text positions)
        boxes = outputs.pred_boxes.float().cpu()  # (images, queries, 4) cxcywh, [0, 1] of the image
        threshold = float(self.options.get("threshold", 0.35))
        for row, i in enumerate(todo):
            height, width = images[i].shape[:2]
            per_name = torch.zeros(probs.shape[1], len(names[i]))
            for j, positions in enumerate(token_spans[row]):
                if positions:
                    per_name[:, j] = probs[row][:, positions].max(dim=-1).values
            scores, labels = per_name.max(dim=-1)
            keep = scores > threshold
            cx, cy, w, h = boxes[row][keep].unbind(-1)
            xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
            xyxy = xyxy * torch.tensor([width, height, width, height], dtype=torch.float32)
            results[i] = to_detections(
                xyxy,
                scores[keep],
                labels[keep],
                names[i],
                width,
                height,
                nms_iou=self.options.get("nms_iou", 0.5),
                max_detections=int(self.options.get("max_detections", 100)),
            )
        return results
