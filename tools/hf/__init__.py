"""Real-model backends: transformers, ultralytics and segment-anything.

Every backend is built as ``Backend(model, device="auto", **options)`` where ``model`` is a
Hugging Face hub id or a local folder (transformers backends) or a weights file (ultralytics,
segment-anything). Constructors are cheap; the first call loads the weights, once, under a lock.
A model that is not there (a missing path, or a hub id absent from the local cache while the
hub is offline) raises ``vpagent.tools.errors.ModelUnavailable`` saying how to provide it;
nothing is ever downloaded unless the user turns the hub back online.

On CUDA the models run in float16, on the CPU in float32 (option ``dtype`` overrides). Every
``*_batch`` method runs one forward pass for the whole list where the model allows it; each
module's docstring says how it batches and where it cannot.

Importing this package imports no model library: torch, transformers and ultralytics load on
first use, so ``vpagent doctor`` can list these backends without the ``hf`` extra installed.
``vpagent.tools.registry`` maps backend names (and the options a name implies) to these classes.
"""

from __future__ import annotations

from vpagent.tools.hf.blip import BlipCaptioner, BlipVQA
from vpagent.tools.hf.clip import ClipMatcher
from vpagent.tools.hf.depth import DptDepth
from vpagent.tools.hf.fastsam import UltralyticsSegmenter
from vpagent.tools.hf.grounding_dino import GroundingDinoDetector
from vpagent.tools.hf.owl import OwlDetector
from vpagent.tools.hf.sam import HFSamSegmenter
from vpagent.tools.hf.segment_anything import SamPredictorSegmenter
from vpagent.tools.hf.yolo import YoloDetector, YoloWorldDetector

__all__ = [
    "BlipCaptioner",
    "BlipVQA",
    "ClipMatcher",
    "DptDepth",
    "GroundingDinoDetector",
    "HFSamSegmenter",
    "OwlDetector",
    "SamPredictorSegmenter",
    "UltralyticsSegmenter",
    "YoloDetector",
    "YoloWorldDetector",
]
