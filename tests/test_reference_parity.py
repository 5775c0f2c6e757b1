"""Reference parity: every tools.hf backend against its library's own inference path.

The same tiny random-init model (tests/fixtures) goes through our backend and through what the
library itself offers for the task: a transformers ``pipeline``, the processor's documented
post-processing, ultralytics' ``predict``, segment-anything's ``SamPredictor``. A random model's
outputs mean nothing, but they are deterministic, so any difference is a difference in pre- or
post-processing: box format and scaling back to the image, thresholds, label mapping, mask
resolution and cropping, depth orientation, prompt templates, padding in batches.

Images of several shapes (portrait, landscape, very small, large) go through our backends as
one batch; the reference sees one image at a time (as the pipelines do), unless it batches
itself. Where a backend differs on purpose, the test applies that difference to the reference
and says so in a comment. What parity cannot prove (that real weights give good answers) is in
docs/parity.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import (
    SEGMENT_ANYTHING_TINY_TYPE,
    build_blip,
    build_clip,
    build_depth_anything,
    build_dpt,
    build_grounding_dino,
    build_owl,
    build_sam_hf,
    build_siglip,
    build_tiny_segment_anything,
    build_yolo,
    coco_names,
    save_tiny_segment_anything,
    test_image,
)
from tests.fixtures.student_tiny import build_tiny_llava
from tests.fixtures.vlm_tiny import build_llava
from vpagent.tools.hf._base import to_pil
from vpagent.tools.types import Box, Detection, Mask

pytestmark = pytest.mark.hf

SHAPES = {"portrait": (72, 40), "landscape": (40, 88), "tiny": (9, 13), "large": (480, 640)}
IMAGES = [test_image(height=h, width=w, seed=i) for i, (h, w) in enumerate(SHAPES.values())]
SCORE_ATOL = 1e-5
BOX_ATOL = 1e-3  # pixels, for float boxes from the same arithmetic


def _pipeline(task: str, path: Path) -> Any:
    from transformers import pipeline

    return pipeline(task, model=str(path), device="cpu")


def _clip(box: list[float], width: int, height: int) -> list[float]:
    x0, y0, x1, y1 = box
    return [
        min(max(x0, 0), width),
        min(max(y0, 0), height),
        min(max(x1, 0), width),
        min(max(y1, 0), height),
    ]


def _in_image(box: list[float], width: int, height: int) -> bool:
    """Pinned difference: the detectors drop a box that lies wholly outside the image (OWLv2
    predicts boxes over the square it pads the image to); the library keeps it."""
    x0, y0, x1, y1 = _clip(box, width, height)
    return x1 > x0 and y1 > y0


def _by_score(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: -d.score)


# --------------------------------------------------------------------------- detector: OWL


@pytest.fixture(scope="module")
def owl_versions(tmp_path_factory) -> dict[int, Path]:
    return {v: build_owl(tmp_path_factory.mktemp(f"owl{v}"), version=v) for v in (1, 2)}


@pytest.fixture(params=[1, 2], ids=["owlvit", "owlv2"])
def owl(request, owl_versions) -> Path:
    return owl_versions[request.param]


def test_owl_one_name_matches_the_zero_shot_detection_pipeline(owl):
    """Boxes scaled back to every image shape (OWLv2 pads to a square), scores, the template."""
    from vpagent.tools.hf.owl import OwlDetector

    # NMS off and no cap: the pipeline has neither (pinned in test_owl_nms_is_the_only_...)
    ours = OwlDetector(str(owl), device="cpu", threshold=0.0, nms_iou=None, max_detections=10**6)
    found = ours.detect_batch(IMAGES, [["cat"]] * len(IMAGES))
    pipe = _pipeline("zero-shot-object-detection", owl)
    for image, got in zip(IMAGES, found, strict=True):
        height, width = image.shape[:2]
        # our default prompt template is the pipeline's label: "a photo of a {}"
        expected = pipe(to_pil(image), candidate_labels=["a photo of a cat"], threshold=0.0)
        # int boxes: a box is outside when it starts past the right or bottom edge
        expected = [e for e in expected if e["box"]["xmin"] < width and e["box"]["ymin"] < height]
        assert len(got) == len(expected) > 0
        got = _by_score(got)
        np.testing.assert_allclose(
            [d.score for d in got], [e["score"] for e in expected], atol=SCORE_ATOL
        )
        assert {d.label for d in got} == {"cat"}
        # the pipeline truncates boxes to int pixels and does not clip them to the image
        for d, e in zip(got, expected, strict=True):
            reference = [e["box"][k] for k in ("xmin", "ymin", "xmax", "ymax")]
            np.testing.assert_allclose(
                np.trunc(d.box.as_list()), _clip(reference, width, height), atol=1
            )


def _owl_reference(path: Path, images: list[np.ndarray], names: list[list[str]]) -> list[dict]:
    """The model card's path: processor, model, processor.post_process_grounded_object_detection."""
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(path).eval()
    results = []
    for image, per_image in zip(images, names, strict=True):
        queries = [[f"a photo of a {n}" for n in per_image]]
        inputs = processor(text=queries, images=to_pil(image), return_tensors="pt")
        with torch.inference_mode():
            outputs = model(**inputs)
        results.append(
            processor.post_process_grounded_object_detection(
                outputs, threshold=0.0, target_sizes=[image.shape[:2]], text_labels=queries
            )[0]
        )
    return results


def _assert_same_detections(
    got: list[Detection], reference: dict, names: list[str], image: np.ndarray
) -> None:
    height, width = image.shape[:2]
    order = [
        int(i)
        for i in np.argsort(-reference["scores"].numpy(), kind="stable")
        if _in_image(reference["boxes"][i].tolist(), width, height)
    ]
    got = _by_score(got)
    assert len(got) == len(order) > 0
    np.testing.assert_allclose(
        [d.score for d in got], reference["scores"].numpy()[order], atol=SCORE_ATOL
    )
    assert [d.label for d in got] == [names[int(reference["labels"][i])] for i in order]
    expected_boxes = [_clip(reference["boxes"][i].tolist(), width, height) for i in order]
    np.testing.assert_allclose([d.box.as_list() for d in got], expected_boxes, atol=BOX_ATOL)


def test_owl_mixed_name_lists_in_a_batch_match_the_processor_reference(owl):
    """Several names per image, a different number per image (blank padding queries)."""
    from vpagent.tools.hf.owl import OwlDetector

    names = [["cat", "car"], ["dog"], ["table", "bus", "chair"], ["car"]]
    ours = OwlDetector(str(owl), device="cpu", threshold=0.0, nms_iou=None, max_detections=10**6)
    found = ours.detect_batch(IMAGES, names)
    for got, reference, per, image in zip(
        found, _owl_reference(owl, IMAGES, names), names, IMAGES, strict=True
    ):
        _assert_same_detections(got, reference, per, image)


def test_owl_nms_is_the_only_difference_from_the_reference(owl_versions):
    """Pinned difference: our per-name NMS (IoU 0.5 by default; 0.1 here, where the tiny
    OWLv2's patch-sized boxes overlap); the library has none."""
    import torch
    from torchvision.ops import batched_nms

    from vpagent.tools.hf.owl import OwlDetector

    owl = owl_versions[2]
    names = [["cat", "dog"]]
    image = IMAGES[1]
    height, width = image.shape[:2]
    found = OwlDetector(str(owl), device="cpu", threshold=0.0, nms_iou=0.1).detect(image, names[0])
    reference = _owl_reference(owl, [image], names)[0]
    inside = [i for i, b in enumerate(reference["boxes"]) if _in_image(b.tolist(), width, height)]
    boxes = torch.tensor([_clip(reference["boxes"][i].tolist(), width, height) for i in inside])
    scores, labels = reference["scores"][inside], reference["labels"][inside]
    keep = batched_nms(boxes, scores, labels, 0.1)
    assert 0 < len(found) == len(keep) < len(inside)
    np.testing.assert_allclose([d.score for d in found], scores[keep].numpy(), atol=SCORE_ATOL)
    assert [d.label for d in found] == [names[0][int(i)] for i in labels[keep]]
    np.testing.assert_allclose([d.box.as_list() for d in found], boxes[keep].numpy(), atol=BOX_ATOL)


# --------------------------------------------------------------------------- Grounding DINO


@pytest.mark.slow
def test_grounding_dino_matches_the_processor_reference(tmp_path):
    """Prompt format, token spans of each name, box scaling; one padded batch on both sides.

    Pinned difference: the library scores a box by its best text token anywhere in the prompt
    (the separators and [CLS]/[SEP] included) and labels it with the tokens above a threshold;
    we score each name by its own tokens and label the box with the best name. The expected
    per-name score is computed from the library's logits and its tokenizer's char_to_token.
    """
    import torch
    from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor

    from vpagent.tools.hf.grounding_dino import GroundingDinoDetector

    path = build_grounding_dino(tmp_path / "gdino")
    names = [["cat", "red car"], ["dog"], ["table", "person", "chair"], ["car", "a photo"]]
    found = GroundingDinoDetector(str(path), device="cpu", threshold=0.0, nms_iou=None)
    found = found.detect_batch(IMAGES, names)

    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForZeroShotObjectDetection.from_pretrained(path).eval()
    inputs = processor(
        images=[to_pil(i) for i in IMAGES], text=names, return_tensors="pt", padding=True
    )  # the library merges each list into "cat. red car."
    with torch.inference_mode():
        outputs = model(**inputs)
    reference = processor.post_process_grounded_object_detection(
        outputs, threshold=0.0, text_threshold=0.0, target_sizes=[i.shape[:2] for i in IMAGES]
    )
    probs = outputs.logits.sigmoid()
    for row, (got, image, per) in enumerate(zip(found, IMAGES, names, strict=True)):
        height, width = image.shape[:2]
        text = ". ".join(per) + "."
        encoding = processor.tokenizer(text)
        per_name, cursor = [], 0
        for name in per:
            start = text.index(name, cursor)
            cursor = start + len(name)
            tokens = {encoding.char_to_token(c) for c in range(start, start + len(name))}
            per_name.append(probs[row][:, sorted(tokens - {None})].max(dim=-1).values)
        scores, labels = torch.stack(per_name, dim=-1).max(dim=-1)
        assert bool((scores <= reference[row]["scores"] + 1e-6).all())  # ours: name tokens only
        order = torch.argsort(scores, descending=True, stable=True)
        got = _by_score(got)
        assert len(got) == len(order)
        np.testing.assert_allclose([d.score for d in got], scores[order].numpy(), atol=SCORE_ATOL)
        assert [d.label for d in got] == [per[int(labels[i])] for i in order]
        boxes = [_clip(reference[row]["boxes"][i].tolist(), width, height) for i in order]
        np.testing.assert_allclose([d.box.as_list() for d in got], boxes, atol=BOX_ATOL)


# --------------------------------------------------------------------------- matcher


@pytest.mark.parametrize("build", [build_clip, build_siglip], ids=["clip", "siglip"])
def test_matcher_matches_the_zero_shot_image_classification_pipeline(build, tmp_path):
    """Softmax over an image's own texts (CLIP) or a sigmoid per text (SigLIP, padded to 64),
    though a batch embeds the union of every image's texts."""
    from vpagent.tools.hf.clip import ClipMatcher

    path = build(tmp_path / "matcher")
    texts = [["a cat", "a dog"], ["a red car", "a cat", "the table"], ["one dog"], ["a cat"]]
    ours = ClipMatcher(str(path), device="cpu").score_batch(IMAGES, texts)
    pipe = _pipeline("zero-shot-image-classification", path)
    for image, per, got in zip(IMAGES, texts, ours, strict=True):
        # the matcher scores whole texts: the pipeline's template is the identity here
        expected = {
            r["label"]: r["score"]
            for r in pipe(to_pil(image), candidate_labels=per, hypothesis_template="{}")
        }
        np.testing.assert_allclose(got, [expected[t] for t in per], atol=SCORE_ATOL)


# --------------------------------------------------------------------------- captioner / vqa


@pytest.fixture(scope="module")
def blip_caption(tmp_path_factory) -> Path:
    return build_blip(tmp_path_factory.mktemp("caption"), task="caption")


def test_blip_caption_matches_the_image_text_to_text_pipeline(blip_caption):
    from vpagent.tools.hf.blip import BlipCaptioner

    path = blip_caption
    prompt = "a picture of"
    ours = BlipCaptioner(str(path), device="cpu", prompt=prompt, max_new_tokens=8)
    captions = ours.caption_batch(IMAGES)
    assert len(set(captions)) > 1, "the captions should depend on the image"
    pipe = _pipeline("image-text-to-text", path)
    for image, caption in zip(IMAGES, captions, strict=True):
        expected = pipe(images=to_pil(image), text=prompt, max_new_tokens=8)[0]["generated_text"]
        assert caption == " ".join(expected.split())


def test_blip_caption_without_prompt_matches_generate(blip_caption):
    """No prompt: the model card's unconditional captioning (generate on pixels alone)."""
    import torch
    from transformers import BlipForConditionalGeneration, BlipProcessor

    from vpagent.tools.hf.blip import BlipCaptioner

    path = blip_caption
    captions = BlipCaptioner(str(path), device="cpu", max_new_tokens=8).caption_batch(IMAGES)
    processor = BlipProcessor.from_pretrained(path)
    model = BlipForConditionalGeneration.from_pretrained(path).eval()
    for image, caption in zip(IMAGES, captions, strict=True):
        with torch.inference_mode():
            ids = model.generate(
                **processor(images=to_pil(image), return_tensors="pt"),
                max_new_tokens=8,
                do_sample=False,
            )
        assert caption == " ".join(processor.decode(ids[0], skip_special_tokens=True).split())


def test_blip_vqa_matches_generate(tmp_path):
    """Questions of different token lengths in one batch against BlipForQuestionAnswering's own
    ``generate`` per question (transformers 5 dropped the visual-question-answering pipeline)."""
    import torch
    from transformers import BlipForQuestionAnswering, BlipProcessor

    from vpagent.tools.hf.blip import BlipVQA

    path = build_blip(tmp_path / "vqa", task="vqa")
    questions = ["what is in the image?", "how many dogs?", "is the car red?", "color?"]
    answers = BlipVQA(str(path), device="cpu", max_new_tokens=6).answer_batch(IMAGES, questions)
    processor = BlipProcessor.from_pretrained(path)
    model = BlipForQuestionAnswering.from_pretrained(path).eval()
    for image, question, answer in zip(IMAGES, questions, answers, strict=True):
        inputs = processor(images=to_pil(image), text=question, return_tensors="pt")
        with torch.inference_mode():
            ids = model.generate(**inputs, max_new_tokens=6, do_sample=False)
        assert answer == " ".join(processor.decode(ids[0], skip_special_tokens=True).split())


# --------------------------------------------------------------------------- depth


@pytest.mark.parametrize("build", [build_dpt, build_depth_anything], ids=["dpt", "depth-anything"])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # a flat map
def test_depth_matches_the_depth_estimation_pipeline(build, tmp_path):
    """Resizing back to each image (bicubic), and orientation.

    Pinned difference: relative models predict disparity (near = large); the role promises
    larger = farther, so our map is ``max(d) - d`` of the pipeline's ``predicted_depth``.
    """
    from vpagent.tools.hf.depth import DptDepth

    path = build(tmp_path / "depth")
    maps = DptDepth(str(path), device="cpu").depth_batch(IMAGES)
    pipe = _pipeline("depth-estimation", path)
    ranges = []
    for image, got in zip(IMAGES, maps, strict=True):
        predicted = pipe(to_pil(image))["predicted_depth"].float().numpy()
        assert got.shape == predicted.shape == image.shape[:2]
        ranges.append(float(np.ptp(predicted)))
        tolerance = 1e-4 * max(ranges[-1], 1.0)
        np.testing.assert_allclose(got, predicted.max() - predicted, atol=tolerance)
    # the random head may predict a flat map for the 9x13 image (both sides agree); not more
    assert sum(r > 0 for r in ranges) >= 3


# --------------------------------------------------------------------------- segmenters

PROMPTS: list[tuple[Box | None, tuple[float, float] | None]] = [
    (Box.of([5, 10, 30, 50]), None),  # a box
    (None, (40.0, 20.0)),  # a point: three candidates, the best predicted IoU wins
    (Box.of([-3, 1, 20, 30]), None),  # a box that must be clipped to the image
    (Box.of([100, 80, 400, 300]), (200.0, 150.0)),  # box and point
]


def _assert_same_mask(got: Mask, pixels: np.ndarray, score: float) -> None:
    assert got.pixels.shape == pixels.shape
    # a pixel whose logit sits on the threshold may flip with float noise; nothing more
    assert np.mean(got.pixels != pixels) <= 1e-3
    assert got.score == pytest.approx(min(max(score, 0.0), 1.0), abs=1e-4)


def test_sam_hf_matches_the_processor_reference(tmp_path):
    """Prompt scaling to the resized image, mask upscaling and cropping of the padding.

    The reference is the model card's path: SamProcessor with the prompt in original-image
    pixels, SamModel, then the processor's own post_process_masks.
    """
    import torch
    from transformers import SamModel, SamProcessor

    from vpagent.tools.hf.sam import HFSamSegmenter

    path = build_sam_hf(tmp_path / "sam")
    boxes, points = [p[0] for p in PROMPTS], [p[1] for p in PROMPTS]
    masks = HFSamSegmenter(str(path), device="cpu").segment_batch(IMAGES, boxes, points)
    assert any(0 < m.pixels.mean() < 1 for m in masks), "masks should be neither empty nor full"
    processor = SamProcessor.from_pretrained(path)
    model = SamModel.from_pretrained(path).eval()
    for image, box, point, got in zip(IMAGES, boxes, points, masks, strict=True):
        height, width = image.shape[:2]
        kwargs: dict[str, Any] = {}
        if box is not None:
            kwargs["input_boxes"] = [[box.clip(width, height).as_list()]]
        if point is not None:
            kwargs["input_points"] = [[[min(point[0], width - 1), min(point[1], height - 1)]]]
        inputs = processor(images=to_pil(image), return_tensors="pt", **kwargs)
        with torch.inference_mode():
            out = model(**inputs, multimask_output=box is None)  # as upstream advises
        best = int(out.iou_scores[0, 0].argmax())
        pixels = processor.post_process_masks(
            out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
        )[0][0, best].numpy()
        _assert_same_mask(got, pixels, float(out.iou_scores[0, 0, best]))


def test_segment_anything_batch_matches_sam_predictor(tmp_path):
    """Our one-encoder-pass batch path against the official SamPredictor, image by image."""
    pytest.importorskip("segment_anything")
    import torch
    from segment_anything import SamPredictor, sam_model_registry

    from vpagent.tools.hf.segment_anything import SamPredictorSegmenter

    checkpoint = save_tiny_segment_anything(tmp_path / "sam_tiny.pth")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sam_model_registry, SEGMENT_ANYTHING_TINY_TYPE, build_tiny_segment_anything)
        ours = SamPredictorSegmenter(
            str(checkpoint), device="cpu", model_type=SEGMENT_ANYTHING_TINY_TYPE
        )
        masks = ours.segment_batch(IMAGES, [p[0] for p in PROMPTS], [p[1] for p in PROMPTS])
    assert any(0 < m.pixels.mean() < 1 for m in masks), "masks should be neither empty nor full"
    predictor = SamPredictor(build_tiny_segment_anything(str(checkpoint)))
    for image, (box, point), got in zip(IMAGES, PROMPTS, masks, strict=True):
        height, width = image.shape[:2]
        predictor.set_image(image)
        with torch.inference_mode():
            candidates, scores, _ = predictor.predict(
                point_coords=None
                if point is None
                else np.array([point]).clip(0, [width - 1, height - 1]),
                point_labels=None if point is None else np.array([1]),
                box=None if box is None else np.array(box.clip(width, height).as_list()),
                multimask_output=box is None,
            )
        best = int(np.argmax(scores))
        _assert_same_mask(got, candidates[best], float(scores[best]))


# --------------------------------------------------------------------------- ultralytics

SMALL = {"conf": 0.0, "imgsz": 128, "max_det": 20}  # untrained: keep every box, tiny input


def _bgr(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, :, ::-1])


@pytest.fixture(scope="module")
def yolo_path(tmp_path_factory) -> Path:
    pytest.importorskip("ultralytics")
    return build_yolo(tmp_path_factory.mktemp("yolo") / "yolo.pt")


@pytest.mark.parametrize("rect", [False, True], ids=["square", "rect"])
def test_yolo_matches_ultralytics_predict(yolo_path, rect):
    """Boxes, scores and class names against ``YOLO(path).predict`` on each image alone.

    Pinned difference: ultralytics' default ``rect=True`` pads a lone image only to the next
    stride multiple; we default to the square letterbox (``rect=False``) so that an image gets
    the same boxes alone and in a mixed batch. With the same ``rect`` both sides agree: our
    default batch against ultralytics' square letterbox; ``rect=True`` one image at a time.
    """
    from ultralytics import YOLO

    from vpagent.tools.hf.yolo import YoloDetector

    names = coco_names()
    ours = YoloDetector(str(yolo_path), device="cpu", rect=rect, **SMALL)
    if rect:
        found = [ours.detect(image, list(names.values())) for image in IMAGES]
    else:
        found = ours.detect_batch(IMAGES, [list(names.values())] * len(IMAGES))
    reference = YOLO(str(yolo_path))
    for image, got in zip(IMAGES, found, strict=True):
        result = reference.predict(_bgr(image), rect=rect, device="cpu", verbose=False, **SMALL)
        boxes = result[0].boxes
        assert len(got) == len(boxes) > 0
        np.testing.assert_allclose([d.score for d in got], boxes.conf.numpy(), atol=SCORE_ATOL)
        assert [d.label for d in got] == [names[int(c)] for c in boxes.cls]
        np.testing.assert_allclose(
            [d.box.as_list() for d in got], boxes.xyxy.numpy(), atol=BOX_ATOL
        )


@pytest.mark.slow
def test_fastsam_matches_ultralytics_prompted_predict(tmp_path):
    """FastSAM: everything-masks, then ultralytics' own box / point prompt, at image size."""
    pytest.importorskip("ultralytics")
    from ultralytics import FastSAM

    from vpagent.tools.hf.fastsam import UltralyticsSegmenter

    path = build_yolo(tmp_path / "FastSAM-tiny.pt", "yolov8n-seg.yaml")
    options = {"conf": 0.0, "iou": 0.9, "imgsz": 128}
    prompts = [p for p in PROMPTS if (p[0] is None) != (p[1] is None)]  # one kind per call
    images = IMAGES[: len(prompts)]
    masks = UltralyticsSegmenter(str(path), device="cpu", **options).segment_batch(
        images, [p[0] for p in prompts], [p[1] for p in prompts]
    )
    assert any(0 < m.pixels.mean() < 1 for m in masks), "masks should be neither empty nor full"
    reference = FastSAM(str(path))
    for image, (box, point), got in zip(images, prompts, masks, strict=True):
        height, width = image.shape[:2]
        # pinned: we clip a box to the image first (ultralytics slices the masks with the raw
        # box, where a negative corner would wrap around)
        kwargs: dict[str, Any] = (
            {"bboxes": [box.clip(width, height).as_list()]}
            if box is not None
            else {"points": [list(point)], "labels": [1]}
        )
        result = reference.predict(
            _bgr(image),
            retina_masks=True,
            rect=False,
            device="cpu",
            verbose=False,
            **options,
            **kwargs,
        )[0]
        assert result.masks is not None
        expected = result.masks.data.bool().any(dim=0).numpy()
        assert got.pixels.shape == expected.shape == image.shape[:2]
        np.testing.assert_array_equal(got.pixels, expected)


# --------------------------------------------------------------------------- vlm / student


def _chat(prompt: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


QUESTIONS = ["what color is the car?", "how many dogs are there in the picture?", "red?", "a"]


def _pipeline_answers(path: Path, max_new_tokens: int) -> list[str]:
    pipe = _pipeline("image-text-to-text", path)
    answers = []
    for image, question in zip(IMAGES, QUESTIONS, strict=True):
        messages = _chat(question)
        messages[0]["content"][0]["image"] = to_pil(image)
        reply = pipe(text=messages, max_new_tokens=max_new_tokens, return_full_text=False)
        answers.append(" ".join(reply[0]["generated_text"].split()))
    return answers


def test_vlm_backend_matches_the_image_text_to_text_pipeline(tmp_path):
    """The chat template, left padding in a batch of different prompt lengths, decoding."""
    from vpagent.tools.hf.vlm import TransformersVLM

    path = build_llava(tmp_path / "llava")
    answers = TransformersVLM(str(path), device="cpu", max_new_tokens=5).generate(IMAGES, QUESTIONS)
    assert len(set(answers)) > 1, "the answers should depend on image and question"
    assert answers == _pipeline_answers(path, 5)


def test_student_generate_matches_the_image_text_to_text_pipeline(tmp_path):
    """A student VLM (ChatML template) answers as the pipeline does on the same folder."""
    from vpagent.student.students import new_student

    path = build_tiny_llava(tmp_path / "student")
    student = new_student(str(path))
    replies = [
        " ".join(r.text.split()) for r in student.generate(IMAGES, QUESTIONS, max_new_tokens=5)
    ]
    assert len(set(replies)) > 1, "the replies should depend on image and question"
    assert replies == _pipeline_answers(path, 5)


# --------------------------------------------------------------------------- scripts/gpu-check.sh

GPU_CHECK = Path(__file__).parents[1] / "scripts" / "gpu-check.sh"


def _gpu_check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(GPU_CHECK), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )


def test_gpu_check_without_cuda_says_so_and_exits_0(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is here: the script would run the full check")
    done = _gpu_check("--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU" in done.stdout and not list(tmp_path.iterdir())


@pytest.mark.heavy  # the whole --cpu check in a subprocess: 25-75 s
def test_gpu_check_cpu_path_writes_the_report(tmp_path):
    done = _gpu_check("--cpu", "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = (tmp_path / "gpu-check-cpu.md").read_text()
    for section in ("Batched vs one at a time", "Batching throughput", "Student training"):
        assert section in report
    assert "**no**" not in report
