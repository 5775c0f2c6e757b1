"""OWL-ViT / OWLv2 open-vocabulary detector (transformers).

``OwlDetector("google/owlv2-base-patch16-ensemble")`` or a local folder. Which of the two
architectures it is comes from the folder's config (``AutoModelForZeroShotObjectDetection``);
the processor of each knows how its images were resized or padded and maps boxes back.

Batching: one forward pass for all images. Images with fewer query names than the longest list
in the batch get blank padding queries, whose logits are dropped before post-processing.

OWL's text encoder reads a fixed number of tokens (16 in the released models): a longer query
is refused with :class:`CannotAnswer` naming the limit, never cut short silently (a cut query
asks for something else).
"""

from __future__ import annotations

from types import SimpleNamespace

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.hf._base import LazyBackend, check_lengths, to_pil
from vpagent.tools.hf._detect import to_detections
from vpagent.tools.roles import Detector, Image
from vpagent.tools.types import Detection


class OwlDetector(LazyBackend, Detector):
    """Text-queried detection with OWL-ViT or OWLv2.

    Options: ``threshold`` (score to keep, 0.1), ``nms_iou`` (per-name NMS, 0.5; None = off),
    ``max_detections`` (per image, 100), ``prompt`` (query template, "a photo of a {}"),
    ``dtype``.
    """

    backend = "owlvit"

    def _load(self) -> str:
        source, self._processor, model = self._from_pretrained(
            "AutoProcessor", "AutoModelForZeroShotObjectDetection"
        )
        if model.config.model_type not in ("owlvit", "owlv2"):
            raise ValueError(f"{source} is a {model.config.model_type!r} model, not OWL-ViT/OWLv2")
        self._net = model.to(self.device).eval()
        return source

    def _query(self, name: str) -> str:
        return str(self.options.get("prompt", "a photo of a {}")).format(name)

    def _check_lengths(self, queries: list[list[str]]) -> None:
        """Refuse a query longer than the text encoder reads."""
        limit = self._net.config.text_config.max_position_embeddings
        for query in sorted({q for per in queries for q in per}):
            tokens = len(self._processor.tokenizer(query)["input_ids"])
            if tokens > limit:
                raise CannotAnswer(
                    f"the detector query {query!r} is {tokens} tokens and OWL-ViT reads at most "
                    f"{limit}: name the object in fewer words"
                )

    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        check_lengths("detect_batch", images, names)
        results: list[list[Detection]] = [[] for _ in images]
        todo = [i for i, per in enumerate(names) if per]
        if not todo:
            return results
        import torch

        self.load()
        width = max(len(names[i]) for i in todo)
        queries = [
            [self._query(n) for n in names[i]] + [" "] * (width - len(names[i])) for i in todo
        ]
        self._check_lengths(queries)
        with self._lock, torch.inference_mode():
            inputs = self._processor(
                text=queries,
                images=[to_pil(images[i]) for i in todo],
                return_tensors="pt",
                truncation=True,
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(self.dtype)
            outputs = self._net(**inputs)
        logits = outputs.logits.float().cpu()  # (images, patches, width)
        pred_boxes = outputs.pred_boxes.float().cpu()  # (images, patches, 4) cxcywh in [0, 1]
        image_processor = self._processor.image_processor
        for row, i in enumerate(todo):
            height, width_px = images[i].shape[:2]
            raw = SimpleNamespace(
                logits=logits[row : row + 1, :, : len(names[i])],
                pred_boxes=pred_boxes[row : row + 1],
            )
            found = image_processor.post_process_object_detection(
                raw,
                threshold=float(self.options.get("threshold", 0.1)),
                target_sizes=[(height, width_px)],
            )[0]
            results[i] = to_detections(
                found["boxes"],
                found["scores"],
                found["labels"],
                names[i],
                width_px,
                height,
                nms_iou=self.options.get("nms_iou", 0.5),
                max_detections=int(self.options.get("max_detections", 100)),
            )
        return results
