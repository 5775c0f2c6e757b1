"""YOLO (closed vocabulary) and YOLO-World (open vocabulary) detectors (ultralytics).

``YoloDetector("/models/yolo11n.pt")`` detects the classes its checkpoint was trained on (the
80 COCO classes for the released models). A query name is matched to a class name after
normalisation (case, articles, plurals) and a small table of synonyms ("people" -> person,
"sofa" -> couch, "tv monitor" -> tv, ...); extra ones can be given as ``aliases={"pup": "dog"}``.
A name that matches no class cannot be answered by a closed-vocabulary model: by default that
raises CannotAnswer (``unknown="ignore"`` returns no detections for it instead).

``YoloWorldDetector("/models/yolov8s-worldv2.pt")`` detects any names. It embeds new names with
ultralytics' CLIP text encoder (``set_classes``), which needs the ``clip`` package
(``pip install git+https://github.com/ultralytics/CLIP.git``) and its ViT-B/32 weights in the
ultralytics weights folder. Without them, names the checkpoint already holds (the vocabulary it
was saved with after a ``set_classes``) still work; others raise ModelUnavailable.

Batching: ultralytics predicts a list of images in one forward pass. Every image is letterboxed
to the same square ``imgsz`` (``rect=False``): ultralytics' default pads a lone image (or a batch
of equal shapes) only to the next stride multiple but a mixed batch to the full square, so the
same image would get slightly different boxes alone and in a batch; ``rect=True`` restores the
default. YOLO-World first sets the
union of the batch's names as its vocabulary (one text-encoder call when it changed), then
each image keeps the detections of its own names.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from vpagent.tools.errors import CannotAnswer, ModelUnavailable
from vpagent.tools.hf._base import LazyBackend, as_rgb, check_lengths, resolve_weights_file
from vpagent.tools.hf._ultralytics import import_ultralytics, ultralytics_device
from vpagent.tools.roles import Detector, Image
from vpagent.tools.types import Box, Detection

WEIGHTS_HELP = (
    "download the .pt file (e.g. from github.com/ultralytics/assets/releases) on a connected "
    "machine and pass its path; vpagent never downloads weights"
)

# Query words -> COCO class names (targets that the model lacks are ignored).
SYNONYMS: dict[str, str] = {
    "people": "person", "man": "person", "men": "person", "woman": "person", "women": "person",
    "boy": "person", "girl": "person", "child": "person", "children": "person", "kid": "person",
    "human": "person", "pedestrian": "person", "player": "person",
    "bike": "bicycle", "motorbike": "motorcycle", "aeroplane": "airplane", "plane": "airplane",
    "automobile": "car", "lorry": "truck", "ship": "boat", "sofa": "couch",
    "tv monitor": "tv", "tvmonitor": "tv", "television": "tv", "monitor": "tv",
    "table": "dining table", "diningtable": "dining table", "desk": "dining table",
    "phone": "cell phone", "cellphone": "cell phone", "mobile phone": "cell phone",
    "smartphone": "cell phone", "plant": "potted plant", "pottedplant": "potted plant",
    "hydrant": "fire hydrant", "ball": "sports ball", "doughnut": "donut", "hotdog": "hot dog",
    "puppy": "dog", "kitten": "cat", "purse": "handbag", "bag": "handbag", "glass": "wine glass",
    "mug": "cup", "computer": "laptop", "notebook": "laptop", "fridge": "refrigerator",
    "teddy": "teddy bear", "hairdryer": "hair drier", "hair dryer": "hair drier",
}  # fmt: skip

_ARTICLES = re.compile(r"^(a|an|the|some)\s+")


def normalize(name: str) -> str:
    name = " ".join(re.sub(r"[^a-z0-9 ]+", " ", name.lower()).split())
    return _ARTICLES.sub("", name)


def singular_forms(name: str) -> list[str]:
    forms = [name]
    if name.endswith("ies"):
        forms.append(name[:-3] + "y")
    if name.endswith("es"):
        forms.append(name[:-2])
    if name.endswith("s") and not name.endswith("ss"):
        forms.append(name[:-1])
    return forms


def match_class(name: str, classes: dict[str, int], aliases: dict[str, str]) -> int | None:
    """The class id a query name means, or None: exact, singular, alias or synonym match."""
    table = {**SYNONYMS, **{normalize(k): normalize(v) for k, v in aliases.items()}}
    for form in singular_forms(normalize(name)):
        if form in classes:
            return classes[form]
        target = table.get(form)
        if target is not None and target in classes:
            return classes[target]
    return None


def _results_to_detections(result: Any, wanted: dict[int, list[str]]) -> list[Detection]:
    """Keep the boxes whose class a query asked for; one Detection per (query, box)."""
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    height, width = result.orig_shape
    xyxy = boxes.xyxy.float().cpu().numpy()
    conf = boxes.conf.float().cpu().numpy()
    cls = boxes.cls.cpu().numpy().astype(int)
    found = []
    for i in np.argsort(-conf):
        for label in wanted.get(int(cls[i]), []):
            box = Box.of(xyxy[i]).clip(width, height)
            if box.area > 0:
                found.append(Detection(box=box, score=float(np.clip(conf[i], 0, 1)), label=label))
    return found


class _UltralyticsDetector(LazyBackend, Detector):
    model_class = "YOLO"
    default_conf = 0.25

    def _load(self) -> str:
        weights = resolve_weights_file(self.model, self.backend, WEIGHTS_HELP)
        ultralytics = import_ultralytics(f"the {self.backend} backend")
        try:
            self._yolo = getattr(ultralytics, self.model_class)(weights)
        except (OSError, RuntimeError, KeyError, AssertionError) as exc:
            raise ModelUnavailable(f"{self.backend}: could not load {weights}: {exc}") from exc
        return weights

    def _class_table(self) -> dict[str, int]:
        names = self._yolo.names
        pairs = names.items() if isinstance(names, dict) else enumerate(names)
        return {normalize(str(n)): int(i) for i, n in pairs}

    def _predict(self, images: list[Image]) -> list[Any]:
        """One ultralytics predict over the batch (it wants BGR arrays)."""
        import torch

        half = self.device.startswith("cuda") and self.dtype == torch.float16
        return self._yolo.predict(
            [np.ascontiguousarray(as_rgb(image)[:, :, ::-1]) for image in images],
            conf=float(self.options.get("conf", self.default_conf)),
            iou=float(self.options.get("iou", 0.7)),
            imgsz=self.options.get("imgsz", 640),
            max_det=int(self.options.get("max_det", 300)),
            rect=bool(self.options.get("rect", False)),
            device=ultralytics_device(self.device),
            **({"quantize": 16} if half else {}),
            verbose=False,
        )


class YoloDetector(_UltralyticsDetector):
    """Closed-vocabulary detection with an ultralytics YOLO checkpoint (YOLOv5u, v8, 11, ...).

    Options: ``conf`` (0.25), ``iou`` (NMS, 0.7), ``imgsz`` (640), ``max_det`` (300),
    ``rect`` (False: square letterbox, see the module docstring), ``aliases`` (extra
    name -> class name), ``unknown`` ("raise" or "ignore"), ``dtype``.
    """

    backend = "yolo"
    reads_attributes = False

    def class_for(self, name: str) -> int | None:
        self.load()
        return match_class(name, self._class_table(), self.options.get("aliases") or {})

    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        check_lengths("detect_batch", images, names)
        if not images:
            return []
        self.load()
        classes = self._class_table()
        aliases = self.options.get("aliases") or {}
        wanted: list[dict[int, list[str]]] = []
        unknown: list[str] = []
        for per_image in names:
            table: dict[int, list[str]] = {}
            for name in per_image:
                class_id = match_class(name, classes, aliases)
                if class_id is None:
                    unknown.append(name)
                else:
                    table.setdefault(class_id, []).append(name)
            wanted.append(table)
        if unknown and self.options.get("unknown", "raise") == "raise":
            raise CannotAnswer(
                f"yolo: {sorted(set(unknown))} match none of the {len(classes)} classes of "
                f"{self.model} (e.g. {', '.join(list(classes)[:8])}, ...); use an "
                "open-vocabulary detector, or map them with aliases={...}"
            )
        todo = [i for i, table in enumerate(wanted) if table]
        results: list[list[Detection]] = [[] for _ in images]
        if not todo:
            return results
        with self._lock:
            predictions = self._predict([images[i] for i in todo])
        for i, prediction in zip(todo, predictions, strict=True):
            results[i] = _results_to_detections(prediction, wanted[i])
        return results


class YoloWorldDetector(_UltralyticsDetector):
    """Open-vocabulary detection with an ultralytics YOLO-World checkpoint.

    Options: ``conf`` (0.05: open-vocabulary scores run low), ``iou`` (0.7), ``imgsz`` (640),
    ``max_det`` (300), ``rect`` (False), ``dtype``.
    """

    backend = "yolo-world"
    model_class = "YOLOWorld"
    default_conf = 0.05

    def _ensure_vocabulary(self, vocabulary: list[str]) -> None:
        current = self._class_table()
        if all(name in current for name in vocabulary):
            return
        try:
            self._yolo.set_classes(vocabulary)
        except Exception as exc:  # the text encoder is missing: clip package or its weights
            raise ModelUnavailable(
                f"yolo-world: embedding new class names {vocabulary} needs ultralytics' CLIP text "
                "encoder (pip install git+https://github.com/ultralytics/CLIP.git, plus ViT-B/32 "
                "weights in the ultralytics weights folder); offline, only the names saved in "
                f"{self.model} work: {sorted(current)[:20]}. Cause: {type(exc).__name__}: {exc}"
            ) from exc

    def detect_batch(self, images: list[Image], names: list[list[str]]) -> list[list[Detection]]:
        check_lengths("detect_batch", images, names)
        if not images:
            return []
        self.load()
        todo = [i for i, per in enumerate(names) if per]
        results: list[list[Detection]] = [[] for _ in images]
        if not todo:
            return results
        vocabulary = list(dict.fromkeys(normalize(n) for i in todo for n in names[i]))
        with self._lock:
            self._ensure_vocabulary(vocabulary)
            classes = self._class_table()
            predictions = self._predict([images[i] for i in todo])
        for i, prediction in zip(todo, predictions, strict=True):
            table: dict[int, list[str]] = {}
            for name in names[i]:
                table.setdefault(classes[normalize(name)], []).append(name)
            results[i] = _results_to_detections(prediction, table)
        return results
