"""Post-processing shared by the open-vocabulary detectors: NMS, clipping, top-k, typed output."""

from __future__ import annotations

from typing import Any

from vpagent.tools.types import Box, Detection


def to_detections(
    boxes: Any,
    scores: Any,
    labels: Any,
    names: list[str],
    width: int,
    height: int,
    nms_iou: float | None = 0.5,
    max_detections: int = 100,
) -> list[Detection]:
    """Turn tensors of xyxy pixel boxes, scores and name indices into clipped Detections.

    Boxes are clipped to the image; empty ones are dropped; per-name NMS at ``nms_iou``
    (``None`` or >= 1 turns it off); at most ``max_detections``, best first.
    """
    import torch
    from torchvision.ops import batched_nms

    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4).cpu()
    scores = torch.as_tensor(scores, dtype=torch.float32).reshape(-1).cpu()
    labels = torch.as_tensor(labels, dtype=torch.int64).reshape(-1).cpu()
    if boxes.numel() == 0:
        return []
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & torch.isfinite(scores)
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    if nms_iou is not None and nms_iou < 1.0 and len(boxes):
        order = batched_nms(boxes, scores, labels, float(nms_iou))
    else:
        order = torch.argsort(scores, descending=True)
    order = order[:max_detections]
    return [
        Detection(
            box=Box.of(boxes[i].tolist()),
            score=min(max(float(scores[i]), 0.0), 1.0),
            label=names[int(labels[i])],
        )
        for i in order.tolist()
    ]
