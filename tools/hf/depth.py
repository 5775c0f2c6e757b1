"""Monocular depth with DPT or Depth Anything (transformers).

``DptDepth("Intel/dpt-hybrid-midas")``, ``DptDepth("depth-anything/Depth-Anything-V2-Small-hf")``
or a local folder; any ``AutoModelForDepthEstimation`` checkpoint loads.

The role promises larger = farther. Relative models (DPT/MiDaS, Depth Anything "relative")
predict inverse depth (disparity, up to an unknown scale and shift), so the map is flipped per
image, ``far = max(d) - d``: the order of distances is kept, which is what programs compare;
the values are not metres. Metric checkpoints (config ``depth_estimation_type="metric"``,
ZoeDepth, Depth Pro) already predict depth and are returned as they are. The option
``output`` ("auto", "disparity", "depth") overrides the guess.

Batching: one forward pass per group of images the processor brings to the same input size.
DPT resizes every image to one size (one group); Depth Anything keeps the aspect ratio, so
images of the same shape share a forward pass.
"""

from __future__ import annotations

import numpy as np

from vpagent.tools.hf._base import LazyBackend, to_pil
from vpagent.tools.roles import DepthEstimator, Image

METRIC_MODEL_TYPES = frozenset({"zoedepth", "depth_pro"})


class DptDepth(LazyBackend, DepthEstimator):
    """Depth maps from a DPT / Depth Anything checkpoint, larger = farther.

    Options: ``output`` ("auto", "disparity": the model predicts inverse depth, "depth": it
    predicts depth), ``dtype``.
    """

    backend = "dpt"

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained(
            "AutoImageProcessor", "AutoModelForDepthEstimation"
        )
        self._net = model.to(self.device).eval()
        output = self.options.get("output", "auto")
        if output == "auto":
            config = model.config
            metric = (
                getattr(config, "depth_estimation_type", "relative") == "metric"
                or config.model_type in METRIC_MODEL_TYPES
            )
            output = "depth" if metric else "disparity"
        if output not in ("disparity", "depth"):
            raise ValueError(f"output must be 'auto', 'disparity' or 'depth', not {output!r}")
        self._disparity = output == "disparity"
        return source

    def depth_batch(self, images: list[Image]) -> list[np.ndarray]:
        if not images:
            return []
        import torch
        import torch.nn.functional as F

        self.load()
        pixels = [
            self._processor(images=to_pil(image), return_tensors="pt").pixel_values[0]
            for image in images
        ]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(pixels):
            groups.setdefault(tuple(p.shape), []).append(i)
        results: list[np.ndarray] = [np.empty(0)] * len(images)
        with self._lock, torch.inference_mode():
            for members in groups.values():
                batch = torch.stack([pixels[i] for i in members]).to(self.device, self.dtype)
                predicted = self._net(pixel_values=batch).predicted_depth.float()
                if predicted.ndim == 4:  # (B, 1, h, w) from some heads
                    predicted = predicted[:, 0]
                for row, i in enumerate(members):
                    height, width = images[i].shape[:2]
                    resized = F.interpolate(
                        predicted[row][None, None],
                        size=(height, width),
                        mode="bicubic",
                        align_corners=False,
                    )[0, 0]
                    if self._disparity:
                        resized = resized.max() - resized
                    results[i] = resized.cpu().numpy().astype(np.float32)
        return results
