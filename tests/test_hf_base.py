"""Shared behaviour of the tools.hf backends: missing models, lazy thread-safe loading, devices."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("torch")

from tests.fixtures.hf_tiny import (
    build_blip,
    build_clip,
    build_dpt,
    build_grounding_dino,
    build_owl,
    build_sam_hf,
    build_yolo,
    test_image,
)
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.hf._base import LazyBackend, as_rgb, resolve_device, resolve_dtype
from vpagent.tools.hf.blip import BlipCaptioner, BlipVQA
from vpagent.tools.hf.clip import ClipMatcher
from vpagent.tools.hf.depth import DptDepth
from vpagent.tools.hf.fastsam import UltralyticsSegmenter
from vpagent.tools.hf.grounding_dino import GroundingDinoDetector
from vpagent.tools.hf.owl import OwlDetector
from vpagent.tools.hf.sam import HFSamSegmenter
from vpagent.tools.hf.segment_anything import SamPredictorSegmenter
from vpagent.tools.hf.yolo import YoloDetector, YoloWorldDetector
from vpagent.tools.registry import BACKENDS, backend_class, build_specialist
from vpagent.tools.roles import Specialist

pytestmark = pytest.mark.hf

TRANSFORMERS_BACKENDS = [
    OwlDetector,
    GroundingDinoDetector,
    ClipMatcher,
    BlipCaptioner,
    BlipVQA,
    DptDepth,
    HFSamSegmenter,
]
FILE_BACKENDS = [YoloDetector, YoloWorldDetector, UltralyticsSegmenter, SamPredictorSegmenter]


def _first_call(backend):
    """Whatever the role, the first real call (which loads the model)."""
    image = test_image()
    role = backend.role
    if role == "detector":
        return backend.detect(image, ["cat"])
    if role == "segmenter":
        return backend.segment(image)
    if role == "matcher":
        return backend.scores(image, ["cat"])
    if role == "captioner":
        return backend.caption(image)
    if role == "vqa":
        return backend.answer(image, "what?")
    return backend.depth(image)


def test_registry_names_every_backend():
    hf_names = {
        (role, name) for role, names in BACKENDS.items() for name, target in names.items()
        # a backend registered from above (the student) is a class, not an import path
        if isinstance(target, str) and target.startswith("vpagent.tools.hf.")
    }  # fmt: skip
    assert {name for _, name in hf_names} == {
        "owlvit", "grounding-dino", "clip", "blip", "blip-vqa", "dpt", "sam-hf",
        "yolo", "yolo-world", "fastsam", "mobilesam", "sam-ultralytics", "sam", "vlm",
    }  # fmt: skip
    for role, name in hf_names:
        cls = backend_class(role, name)
        assert issubclass(cls, Specialist) and cls.role == role, name


def test_registry_builds_ultralytics_segmenters_with_their_kind(tmp_path):
    for name in ("fastsam", "mobilesam", "sam-ultralytics"):
        backend = build_specialist("segmenter", name, model=str(tmp_path / "w.pt"), device="cpu")
        assert isinstance(backend, UltralyticsSegmenter) and name in backend.info().backend


@pytest.mark.parametrize("cls", TRANSFORMERS_BACKENDS + FILE_BACKENDS, ids=lambda c: c.__name__)
def test_missing_path_raises_model_unavailable(cls, tmp_path):
    missing = tmp_path / "no" / "such" / "model.pt"
    backend = cls(str(missing), device="cpu")
    assert not backend.loaded and backend.info().weights is None  # the constructor loads nothing
    start = time.monotonic()
    with pytest.raises(ModelUnavailable, match=str(missing.parent)):
        _first_call(backend)
    assert time.monotonic() - start < 30  # fails at once, never waits on a network


@pytest.mark.parametrize("cls", TRANSFORMERS_BACKENDS, ids=lambda c: c.__name__)
def test_uncached_hub_id_raises_model_unavailable(cls):
    backend = cls("vpagent-test/not-a-cached-model", device="cpu")
    with pytest.raises(ModelUnavailable, match="hf download vpagent-test/not-a-cached-model"):
        backend.load()


def test_folder_without_config_is_unavailable(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"config\.json"):
        ClipMatcher(str(tmp_path), device="cpu").load()


def test_load_runs_once_under_concurrent_first_calls():
    calls = []

    class Slow(LazyBackend):
        backend = "slow"

        def _load(self) -> str:
            calls.append(threading.get_ident())
            time.sleep(0.2)
            return "weights"

    slow = Slow("m", device="cpu")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: slow.load(), range(8)))
    assert len(calls) == 1 and slow.loaded and slow.info().weights == "weights"


def test_concurrent_calls_match_sequential(tmp_path):
    matcher = ClipMatcher(str(build_clip(tmp_path / "clip")), device="cpu")
    images = [test_image(seed=s) for s in range(6)]
    texts = ["a cat", "a dog", "a red car"]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda image: matcher.scores(image, texts), images))
    sequential = [matcher.scores(image, texts) for image in images]
    np.testing.assert_allclose(concurrent, sequential, rtol=1e-5)


def test_device_and_dtype_choice():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_dtype("cpu") == torch.float32
    assert resolve_dtype("cuda") == torch.float16
    assert resolve_dtype("cuda:1", "bfloat16") == torch.bfloat16
    with pytest.raises(ValueError):
        resolve_dtype("cpu", "int8")
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailable, match="CUDA"):
            resolve_device("cuda")


def test_as_rgb_normalises_images():
    gray = np.zeros((4, 5), dtype=np.uint8)
    assert as_rgb(gray).shape == (4, 5, 3)
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    assert as_rgb(rgba).shape == (4, 5, 3)
    unit = np.full((2, 2, 3), 0.5)
    assert as_rgb(unit).dtype == np.uint8 and as_rgb(unit)[0, 0, 0] == 127
    with pytest.raises(ValueError):
        as_rgb(np.zeros((4, 5, 2)))


def test_backends_stay_on_loopback(tmp_path):
    """Load, run, and fail to find models under conftest's guard against outside connections."""
    clip_path = build_clip(tmp_path / "clip")
    yolo_path = build_yolo(tmp_path / "yolo.pt")
    ClipMatcher(str(clip_path), device="cpu").scores(test_image(), ["a cat", "a dog"])
    YoloDetector(str(yolo_path), device="cpu", conf=0.0, imgsz=64).detect(test_image(), ["dog"])
    with pytest.raises(ModelUnavailable):
        OwlDetector("google/owlvit-base-patch32", device="cpu").load()
    with pytest.raises(ModelUnavailable):
        YoloDetector("yolo11n.pt", device="cpu").load()  # a bare name ultralytics would fetch


REDUCED_PRECISION = {
    "clip": (ClipMatcher, build_clip),
    "owlv2": (OwlDetector, lambda path: build_owl(path, version=2)),
    "grounding-dino": (GroundingDinoDetector, build_grounding_dino),
    "blip": (BlipCaptioner, build_blip),
    "blip-vqa": (BlipVQA, lambda path: build_blip(path, task="vqa")),
    "dpt": (DptDepth, build_dpt),
    "sam-hf": (HFSamSegmenter, build_sam_hf),
}


@pytest.mark.parametrize("name", sorted(REDUCED_PRECISION))
def test_reduced_precision_runs(name, tmp_path):
    """dtype=bfloat16 on the CPU takes the same casts as float16 on CUDA (no GPU here)."""
    import torch

    cls, build = REDUCED_PRECISION[name]
    backend = cls(str(build(tmp_path / name)), device="cpu", dtype="bfloat16", max_new_tokens=3)
    result = _first_call(backend)
    assert result is not None
    assert next(backend._net.parameters()).dtype == torch.bfloat16
