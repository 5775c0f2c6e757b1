"""Segment Anything with Meta's ``segment-anything`` package (SamPredictor).

``SamPredictorSegmenter("/models/sam_vit_h_4b8939.pth")``: the model type (``vit_h``,
``vit_l``, ``vit_b``) is read from the file name or given as ``model_type=``; the model is
built by ``segment_anything.sam_model_registry[model_type](checkpoint=path)``, the official
loading code.

One image goes through the official ``SamPredictor`` (``set_image`` + ``predict``), which
keeps the image embedding: segmenting several objects of the same image in a row encodes it
once. A batch of several images runs the image encoder once over all of them and then, per
image, the same prompt-encoder / mask-decoder / upscaling steps as ``SamPredictor``; tests
check that both paths give the same masks.

On CUDA the model runs under float16 autocast (the package has no half-precision mode of its
own); on the CPU in float32.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.tools.cache import pixels_key
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf._base import LazyBackend, require, resolve_weights_file
from vpagent.tools.hf._prompts import Prompt, prepare_batch
from vpagent.tools.roles import Image, Segmenter
from vpagent.tools.types import Box, Mask

CHECKPOINT_HELP = (
    "download a SAM checkpoint (e.g. sam_vit_b_01ec64.pth from "
    "github.com/facebookresearch/segment-anything) on a connected machine and pass its path"
)


def model_type_from_name(path: str) -> str | None:
    match = re.search(r"vit[_-]?([hlb])", Path(path).name.lower())
    return f"vit_{match.group(1)}" if match else None


class SamPredictorSegmenter(LazyBackend, Segmenter):
    """Box- or point-prompted masks with the official Segment Anything code.

    ``model``: the checkpoint path. Options: ``model_type`` (a ``sam_model_registry`` key;
    guessed from the file name), ``dtype`` ("float32" turns CUDA autocast off).
    """

    backend = "sam"

    def _load(self) -> str:
        checkpoint = resolve_weights_file(self.model, self.backend, CHECKPOINT_HELP)
        segment_anything = require("segment_anything", "the sam backend")
        model_type = self.options.get("model_type") or model_type_from_name(checkpoint)
        registry = segment_anything.sam_model_registry
        if model_type is None:
            raise ModelUnavailable(
                f"sam: cannot tell the model type of {checkpoint}; pass model_type= one of "
                f"{sorted(registry)}"
            )
        if model_type not in registry:
            raise ModelUnavailable(
                f"sam: unknown model_type {model_type!r}; use one of {sorted(registry)}"
            )
        try:
            sam = registry[model_type](checkpoint=checkpoint)
        except (RuntimeError, OSError, KeyError) as exc:
            raise ModelUnavailable(
                f"sam: {checkpoint} does not load as {model_type!r}: {exc}"
            ) from exc
        self._sam = sam.to(self.device).eval()
        self._predictor = segment_anything.SamPredictor(self._sam)
        self._resize = self._predictor.transform  # ResizeLongestSide(encoder img_size)
        self._predictor_image: str | None = None
        return checkpoint

    def _autocast(self) -> Any:
        import torch

        if self.device.startswith("cuda") and self.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.dtype)
        return nullcontext()

    def segment_batch(
        self, images: list[Image], boxes: list[Box | None], points: list[tuple[float, float] | None]
    ) -> list[Mask]:
        images, prompts = prepare_batch(images, boxes, points)
        if not images:
            return []
        self.load()
        with self._lock, self._autocast():
            if len(images) == 1:
                return [self._predict_one(images[0], prompts[0])]
            return self._predict_many(images, prompts)

    def _mask(self, masks: Any, scores: Any, prompt: Prompt) -> Mask:
        best = int(np.argmax(scores))
        return Mask(
            pixels=np.asarray(masks[best], dtype=bool),
            score=float(min(max(float(scores[best]), 0.0), 1.0)),
            meta={"backend": self.backend, "whole_image_prompt": prompt.whole_image},
        )

    def _predict_one(self, image: np.ndarray, prompt: Prompt) -> Mask:
        """The official path: SamPredictor, reusing the embedding of the last image."""
        import torch

        key = pixels_key(image)
        with torch.inference_mode():
            if self._predictor_image != key:
                self._predictor.set_image(image, image_format="RGB")
                self._predictor_image = key
            masks, scores, _ = self._predictor.predict(
                point_coords=None if prompt.point is None else prompt.point[None],
                point_labels=None if prompt.point is None else np.array([1]),
                box=prompt.box,
                multimask_output=prompt.multimask,
            )
        return self._mask(masks, scores, prompt)

    def _predict_many(self, images: list[np.ndarray], prompts: list[Prompt]) -> list[Mask]:
        """One image-encoder pass for all images, then SamPredictor.predict_torch's steps."""
        import torch

        sam, resize, device = self._sam, self._resize, self.device
        with torch.inference_mode():
            tensors, sizes = [], []
            for image in images:
                resized = resize.apply_image(image)
                sizes.append(resized.shape[:2])
                tensor = torch.as_tensor(resized, device=device).permute(2, 0, 1).contiguous()
                tensors.append(sam.preprocess(tensor[None]))
            embeddings = sam.image_encoder(torch.cat(tensors))
            results = []
            for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
                original = image.shape[:2]
                points = box = None
                if prompt.point is not None:
                    coords = resize.apply_coords(prompt.point[None].astype(float), original)
                    points = (
                        torch.as_tensor(coords, dtype=torch.float, device=device)[None],
                        torch.ones(1, 1, dtype=torch.int, device=device),
                    )
                if prompt.box is not None:
                    box = resize.apply_boxes(prompt.box[None].astype(float), original)
                    box = torch.as_tensor(box, dtype=torch.float, device=device)[None]
                sparse, dense = sam.prompt_encoder(points=points, boxes=box, masks=None)
                low_res, iou = sam.mask_decoder(
                    image_embeddings=embeddings[i : i + 1],
                    image_pe=sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=prompt.multimask,
                )
                masks = sam.postprocess_masks(low_res, sizes[i], original) > sam.mask_threshold
                results.append(
                    self._mask(masks[0].cpu().numpy(), iou[0].float().cpu().numpy(), prompt)
                )
        return results
