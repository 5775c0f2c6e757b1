"""Promptable segmenters from ultralytics: FastSAM, MobileSAM and SAM.

``UltralyticsSegmenter("/models/FastSAM-s.pt", kind="fastsam")``,
``UltralyticsSegmenter("/models/mobile_sam.pt", kind="mobilesam")`` or
``UltralyticsSegmenter("/models/sam_b.pt", kind="sam-ultralytics")``; ``kind`` defaults from
the file name ("fastsam" in it -> FastSAM, otherwise SAM). Weights load through ultralytics'
own ``FastSAM(path)`` / ``SAM(path)``; ultralytics picks the SAM architecture from the file
name, which must end in one of its known names (``mobile_sam.pt``, ``sam_b.pt``, ...).

FastSAM segments everything in the image (a YOLO-seg model) and the prompt then picks masks,
with ultralytics' ``FastSAMPredictor.prompt``: a box picks the mask of highest IoU with it, a
point the union of the masks containing it. Batching: one YOLO forward pass for the batch,
every image letterboxed to the square ``imgsz`` (``rect=False``, as for YOLO: the same image
then gives the same masks alone and in a mixed-size batch).

SAM / MobileSAM: ultralytics' SAM predictor takes one image at a time and drops masks under
its confidence threshold, so we run the model's own modules the way that predictor does
(letterbox to the encoder size, normalise, encode, prompt, decode, scale back): the image
encoder runs once over the whole batch, then each image's prompt is decoded on its own
embedding. A point alone asks for three masks and keeps the best (SAM's advice for
ambiguous prompts). SAM 2 checkpoints have other modules: they go one image at a time
through ultralytics' predictor.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf._base import LazyBackend, resolve_weights_file
from vpagent.tools.hf._prompts import Prompt, prepare_batch
from vpagent.tools.hf._ultralytics import import_ultralytics, ultralytics_device
from vpagent.tools.roles import Image, Segmenter
from vpagent.tools.types import Box, Mask

KINDS = ("fastsam", "mobilesam", "sam-ultralytics")
WEIGHTS_HELP = (
    "download the checkpoint (FastSAM-s.pt / FastSAM-x.pt, mobile_sam.pt, sam_b.pt, ...) from "
    "github.com/ultralytics/assets/releases on a connected machine and pass its path"
)


class UltralyticsSegmenter(LazyBackend, Segmenter):
    """Box- or point-prompted masks with FastSAM, MobileSAM or SAM via ultralytics.

    Options: ``kind`` (one of "fastsam", "mobilesam", "sam-ultralytics"), and for FastSAM
    ``conf`` (0.4), ``iou`` (0.9), ``imgsz`` (1024), ``rect`` (False); ``dtype``.
    """

    backend = "fastsam"

    def __init__(self, model: str, device: str = "auto", **options: Any) -> None:
        super().__init__(model, device, **options)
        kind = options.get("kind") or ("fastsam" if "fastsam" in Path(model).name.lower() else None)
        kind = kind or ("mobilesam" if "mobile" in Path(model).name.lower() else "sam-ultralytics")
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        self.kind = kind
        self.backend = kind  # type: ignore[misc]  # per instance: the name the registry used

    # ------------------------------------------------------------------ loading

    def _load(self) -> str:
        weights = resolve_weights_file(self.model, self.kind, WEIGHTS_HELP)
        ultralytics = import_ultralytics(f"the {self.kind} backend")
        try:
            if self.kind == "fastsam":
                self._yolo = ultralytics.FastSAM(weights)
            else:
                from ultralytics.models.sam.build import sam_model_map

                if not any(weights.endswith(name) for name in sam_model_map):
                    raise ModelUnavailable(
                        f"{self.kind}: ultralytics picks the SAM architecture from the file name; "
                        f"rename {weights} to end in one of {sorted(sam_model_map)}"
                    )
                self._yolo = ultralytics.SAM(weights)
        except (OSError, RuntimeError, KeyError, AssertionError) as exc:
            raise ModelUnavailable(f"{self.kind}: could not load {weights}: {exc}") from exc
        if self.kind != "fastsam":
            from ultralytics.models.sam.modules.sam import SAMModel

            self._sam = self._yolo.model.to(self.device).eval()
            self._modules_path = isinstance(self._sam, SAMModel)
        return weights

    def _half(self) -> bool:
        import torch

        return self.device.startswith("cuda") and self.dtype == torch.float16

    # ------------------------------------------------------------------ inference

    def segment_batch(
        self, images: list[Image], boxes: list[Box | None], points: list[tuple[float, float] | None]
    ) -> list[Mask]:
        images, prompts = prepare_batch(images, boxes, points)
        if not images:
            return []
        self.load()
        with self._lock:
            if self.kind == "fastsam":
                return self._fastsam(images, prompts)
            if self._modules_path:
                return self._sam_modules(images, prompts)
            return [
                self._sam_predictor(image, prompt)
                for image, prompt in zip(images, prompts, strict=True)
            ]

    def _empty(self, image: np.ndarray, prompt: Prompt) -> Mask:
        return Mask(
            pixels=np.zeros(image.shape[:2], dtype=bool),
            score=0.0,
            meta={"backend": self.kind, "whole_image_prompt": prompt.whole_image, "empty": True},
        )

    def _fastsam(self, images: list[np.ndarray], prompts: list[Prompt]) -> list[Mask]:
        results = self._yolo.predict(
            [np.ascontiguousarray(image[:, :, ::-1]) for image in images],
            conf=float(self.options.get("conf", 0.4)),
            iou=float(self.options.get("iou", 0.9)),
            imgsz=self.options.get("imgsz", 1024),
            retina_masks=True,
            rect=bool(self.options.get("rect", False)),
            device=ultralytics_device(self.device),
            **({"quantize": 16} if self._half() else {}),
            verbose=False,
        )
        predictor = self._yolo.predictor
        masks = []
        for image, prompt, result in zip(images, prompts, results, strict=True):
            if result.masks is None or len(result) == 0:
                masks.append(self._empty(image, prompt))
                continue
            picked = predictor.prompt(
                [result],
                bboxes=None if prompt.box is None else [prompt.box.round().astype(int).tolist()],
                points=None if prompt.point is None else [prompt.point.astype(int).tolist()],
                labels=None if prompt.point is None else [1],
            )[0]
            if picked.masks is None or len(picked) == 0:
                masks.append(self._empty(image, prompt))
                continue
            pixels = picked.masks.data.bool().any(dim=0).cpu().numpy()
            if pixels.shape != image.shape[:2]:  # retina masks are image-sized; guard anyway
                import cv2

                pixels = cv2.resize(
                    pixels.astype(np.uint8), image.shape[1::-1], interpolation=cv2.INTER_NEAREST
                ).astype(bool)
            score = float(picked.boxes.conf.max()) if picked.boxes is not None else 1.0
            masks.append(
                Mask(
                    pixels=pixels,
                    score=min(max(score, 0.0), 1.0),
                    meta={"backend": self.kind, "whole_image_prompt": prompt.whole_image},
                )
            )
        return masks

    def _sam_modules(self, images: list[np.ndarray], prompts: list[Prompt]) -> list[Mask]:
        """SAM / MobileSAM: ultralytics' predictor steps, with one encoder pass for the batch."""
        import torch
        from ultralytics.data.augment import LetterBox
        from ultralytics.utils.ops import scale_masks

        sam, device = self._sam, self.device
        size = int(sam.image_encoder.img_size)
        mean = torch.tensor([123.675, 116.28, 103.53], device=device).view(-1, 1, 1)
        std = torch.tensor([58.395, 57.12, 57.375], device=device).view(-1, 1, 1)
        letterbox = LetterBox((size, size), auto=False, center=False)
        half = self._half()
        autocast = torch.autocast("cuda", dtype=self.dtype) if half else nullcontext()
        with torch.inference_mode(), autocast:
            batch = []
            for image in images:
                # top-left aligned, padded with 114, like the predictor's pre_transform
                boxed = letterbox(image=image)
                tensor = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1))).to(device)
                batch.append((tensor.float() - mean) / std)
            embeddings = sam.image_encoder(torch.stack(batch))
            results = []
            for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
                height, width = image.shape[:2]
                gain = min(size / height, size / width)
                points = box = None
                if prompt.point is not None:
                    coords = torch.as_tensor(
                        prompt.point * gain, dtype=torch.float32, device=device
                    )
                    points = (
                        coords.view(1, 1, 2),
                        torch.ones(1, 1, dtype=torch.int32, device=device),
                    )
                if prompt.box is not None:
                    box = torch.as_tensor(prompt.box * gain, dtype=torch.float32, device=device)
                    box = box.view(1, 4)
                sparse, dense = sam.prompt_encoder(points=points, boxes=box, masks=None)
                low_res, scores = sam.mask_decoder(
                    image_embeddings=embeddings[i : i + 1],
                    image_pe=sam.prompt_encoder.get_dense_pe(),
                    sparse_prompt_embeddings=sparse,
                    dense_prompt_embeddings=dense,
                    multimask_output=prompt.multimask,
                )
                scores = scores[0].float()
                best = int(torch.argmax(scores))
                # the predictor's postprocess: crop the letterbox content, resize to the image
                ratio = [
                    round(o * gain) * m / size / o
                    for o, m in zip((height, width), low_res.shape[-2:], strict=True)
                ]
                logits = scale_masks(
                    low_res[:, best : best + 1].float(),
                    (height, width),
                    (ratio, (0, 0)),
                    padding=False,
                )
                results.append(
                    Mask(
                        pixels=(logits[0, 0] > sam.mask_threshold).cpu().numpy(),
                        score=float(scores[best].clamp(0, 1)),
                        meta={"backend": self.kind, "whole_image_prompt": prompt.whole_image},
                    )
                )
        return results

    def _sam_predictor(self, image: np.ndarray, prompt: Prompt) -> Mask:
        """SAM 2 checkpoints: ultralytics' own predictor, one image at a time."""
        result = self._yolo.predict(
            np.ascontiguousarray(image[:, :, ::-1]),
            bboxes=None if prompt.box is None else [prompt.box.tolist()],
            points=None if prompt.point is None else [prompt.point.tolist()],
            labels=None if prompt.point is None else [1],
            conf=0.0,
            device=ultralytics_device(self.device),
            **({"quantize": 16} if self._half() else {}),
            verbose=False,
        )[0]
        if result.masks is None or len(result) == 0:
            return self._empty(image, prompt)
        best = int(result.boxes.conf.argmax()) if result.boxes is not None else 0
        score = float(result.boxes.conf[best]) if result.boxes is not None else 1.0
        return Mask(
            pixels=result.masks.data[best].bool().cpu().numpy(),
            score=min(max(score, 0.0), 1.0),
            meta={"backend": self.kind, "whole_image_prompt": prompt.whole_image},
        )
