"""Backend names per role, and building a specialist from its config.

Backends are imported only when built, so the heavy optional dependencies (torch,
ultralytics, segment-anything, onnxruntime...) load only for the roles that use them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from vpagent.tools.config import ToolsConfig
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.roles import Specialist

# role -> backend name -> "module:Class" (imported when built), or a class registered from a
# layer above the tools (register_backend)
BACKENDS: dict[str, dict[str, str | type[Specialist]]] = {
    "detector": {
        "ssd-coco": "vpagent.tools.offline.detector:SSDCocoDetector",
        "owlvit": "vpagent.tools.hf.owl:OwlDetector",
        "grounding-dino": "vpagent.tools.hf.grounding_dino:GroundingDinoDetector",
        "yolo": "vpagent.tools.hf.yolo:YoloDetector",
        "yolo-world": "vpagent.tools.hf.yolo:YoloWorldDetector",
    },
    "segmenter": {
        "grabcut": "vpagent.tools.offline.segmenter:GrabCutSegmenter",
        "sam-hf": "vpagent.tools.hf.sam:HFSamSegmenter",
        "sam": "vpagent.tools.hf.segment_anything:SamPredictorSegmenter",
        "fastsam": "vpagent.tools.hf.fastsam:UltralyticsSegmenter",
        "mobilesam": "vpagent.tools.hf.fastsam:UltralyticsSegmenter",
        "sam-ultralytics": "vpagent.tools.hf.fastsam:UltralyticsSegmenter",
    },
    "matcher": {
        "classifier-minilm": "vpagent.tools.offline.matcher:ClassifierMatcher",
        "clip": "vpagent.tools.hf.clip:ClipMatcher",
        # verify_property asked to a VLM as yes/no; scores from a base matcher (tools.vlm_roles)
        "vlm": "vpagent.tools.hf.vlm:TransformersVLMMatcher",
        "openai-vlm": "vpagent.tools.remote_vlm:OpenAIVLMMatcher",
        "llamacpp-vlm": "vpagent.tools.remote_vlm:EmbeddedVLMMatcher",
    },
    "captioner": {
        "scene-description": "vpagent.tools.offline.scene:SceneCaptioner",
        "blip": "vpagent.tools.hf.blip:BlipCaptioner",
        "vlm": "vpagent.tools.hf.vlm:TransformersVLMCaptioner",
        "openai-vlm": "vpagent.tools.remote_vlm:OpenAIVLMCaptioner",
        "llamacpp-vlm": "vpagent.tools.remote_vlm:EmbeddedVLMCaptioner",
    },
    "vqa": {
        "scene-description-llm": "vpagent.tools.offline.scene:SceneVQA",
        "blip-vqa": "vpagent.tools.hf.blip:BlipVQA",
        "vlm": "vpagent.tools.hf.vlm:TransformersVLMVQA",
        "openai-vlm": "vpagent.tools.remote_vlm:OpenAIVLMVQA",
        "llamacpp-vlm": "vpagent.tools.remote_vlm:EmbeddedVLMVQA",
    },
    "ocr": {"rapidocr": "vpagent.tools.offline.ocr:RapidOCRReader"},
    "depth": {
        "vertical-position": "vpagent.tools.offline.depth:VerticalPositionDepth",
        "dpt": "vpagent.tools.hf.depth:DptDepth",
    },
    "faces": {"haar": "vpagent.tools.offline.faces:HaarFaceDetector"},
}


# Backends that put a vision-language model behind simple_query / caption / verify_property.
VLM_BACKENDS = frozenset({"vlm", "openai-vlm", "llamacpp-vlm"})
# Backends that call a model server over HTTP: nothing of theirs is loaded in this process.
REMOTE_BACKENDS = frozenset({"openai-vlm"})


def is_vlm_backed(tools: ToolsConfig, role: str = "vqa") -> bool:
    """Whether ``role`` (vqa: ``simple_query``) is served by a real vision-language model.

    Reads the configuration only (nothing is built), so the planner can say so in its prompt.
    """
    return getattr(tools, role).backend in VLM_BACKENDS


# Options a backend name implies, where one class serves several names.
IMPLIED_OPTIONS: dict[str, dict[str, Any]] = {
    "fastsam": {"kind": "fastsam"},
    "mobilesam": {"kind": "mobilesam"},
    "sam-ultralytics": {"kind": "sam-ultralytics"},
}


def register_backend(role: str, name: str, cls: type[Specialist]) -> None:
    """Serve ``name`` for ``role`` with ``cls``: how a backend that lives above the tools adds
    itself (the trained student: :func:`vpagent.student.backend.register_student_backends`);
    the layers contract forbids naming it here."""
    if role not in BACKENDS:
        raise ValueError(f"unknown role '{role}' (roles: {', '.join(BACKENDS)})")
    BACKENDS[role][name] = cls


def backend_class(role: str, backend: str) -> type[Specialist]:
    """Import and return the class serving ``backend`` for ``role``."""
    choices = BACKENDS.get(role)
    if choices is None:
        raise ValueError(f"unknown role '{role}' (roles: {', '.join(BACKENDS)})")
    target = choices.get(backend)
    if target is None:
        raise ValueError(
            f"unknown {role} backend '{backend}' (choose from: {', '.join(sorted(choices))})"
        )
    if not isinstance(target, str):
        return target
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        extra = "hf" if module_name.startswith("vpagent.tools.hf") else "offline"
        raise ModelUnavailable(
            f"the {role} backend '{backend}' needs packages that are not installed "
            f"({error.name or error}); install them with: pip install 'vpagent[{extra}]'"
        ) from error
    return getattr(module, class_name)


def build_specialist(
    role: str,
    backend: str,
    *,
    model: str | None = None,
    device: str = "auto",
    options: dict[str, Any] | None = None,
    dependencies: dict[str, Callable[[], Any]] | None = None,
) -> Specialist:
    """Construct a backend from its config.

    ``dependencies`` supplies constructor parameters a backend declares by name (e.g. the
    scene-description stand-ins take the ``detector`` or an ``llm``), resolved lazily.
    """
    cls = backend_class(role, backend)
    parameters = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {**IMPLIED_OPTIONS.get(backend, {}), **(options or {})}
    if model is not None:
        if "model" not in parameters:
            raise ValueError(f"the {role} backend '{backend}' takes no 'model' setting")
        kwargs["model"] = model
    if "device" in parameters:
        kwargs.setdefault("device", device)
    for name, provide in (dependencies or {}).items():
        if name in parameters and name not in kwargs:
            kwargs[name] = provide()
    return cls(**kwargs)
