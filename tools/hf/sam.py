"""Segment Anything through transformers' ``SamModel``.

``HFSamSegmenter("facebook/sam-vit-base")`` or a local folder written by ``save_pretrained``.

Batching: the image encoder (nearly all of SAM's cost) runs once over the whole batch; each
image's prompt then goes through the prompt encoder and mask decoder on its own embedding,
so images in one batch may mix boxes and points.
"""

from __future__ import annotations

import numpy as np

from vpagent.tools.hf._base import LazyBackend, check_lengths, to_pil
from vpagent.tools.hf._prompts import make_prompt
from vpagent.tools.roles import Image, Segmenter
from vpagent.tools.types import Box, Mask


class HFSamSegmenter(LazyBackend, Segmenter):
    """Box- or point-prompted masks with transformers' SAM.

    Options: ``mask_threshold`` (logit threshold, 0.0), ``dtype``.
    """

    backend = "sam-hf"

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained("SamProcessor", "SamModel")
        self._net = model.to(self.device).eval()
        return source

    def segment_batch(
        self, images: list[Image], boxes: list[Box | None], points: list[tuple[float, float] | None]
    ) -> list[Mask]:
        check_lengths("segment_batch", images, boxes, points)
        if not images:
            return []
        import torch

        self.load()
        image_processor = self._processor.image_processor
        threshold = float(self.options.get("mask_threshold", 0.0))
        masks: list[Mask] = []
        with self._lock, torch.inference_mode():
            encoded = image_processor(images=[to_pil(i) for i in images], return_tensors="pt")
            pixels = encoded["pixel_values"].to(self.device, self.dtype)
            embeddings = self._net.get_image_embeddings(pixels)
            for i, image in enumerate(images):
                height, width = image.shape[:2]
                prompt = make_prompt(boxes[i], points[i], width, height)
                new_h, new_w = (int(v) for v in encoded["reshaped_input_sizes"][i])
                scale = np.array([new_w / width, new_h / height])
                kwargs = {}
                if prompt.box is not None:
                    box = (prompt.box.reshape(2, 2) * scale).reshape(1, 1, 4)
                    kwargs["input_boxes"] = torch.tensor(box, dtype=self.dtype, device=self.device)
                if prompt.point is not None:
                    point = (prompt.point * scale).reshape(1, 1, 1, 2)
                    kwargs["input_points"] = torch.tensor(
                        point, dtype=self.dtype, device=self.device
                    )
                    kwargs["input_labels"] = torch.ones(
                        1, 1, 1, dtype=torch.long, device=self.device
                    )
                out = self._net(
                    image_embeddings=embeddings[i : i + 1],
                    multimask_output=prompt.multimask,
                    **kwargs,
                )
                scores = out.iou_scores[0, 0].float()  # (candidates,)
                best = int(torch.argmax(scores))
                upscaled = image_processor.post_process_masks(
                    out.pred_masks[:, :, best : best + 1].float().cpu(),
                    [(height, width)],
                    [(new_h, new_w)],
                    mask_threshold=threshold,
                    binarize=True,
                )[0]  # (1, 1, H, W)
                masks.append(
                    Mask(
                        pixels=upscaled[0, 0].numpy().astype(bool),
                        score=float(scores[best].clamp(0, 1)),
                        meta={"backend": self.backend, "whole_image_prompt": prompt.whole_image},
                    )
                )
        return masks
