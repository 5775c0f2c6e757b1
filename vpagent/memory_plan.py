"""`vpagent doctor --memory`: how much GPU memory each configured role needs, and what fits.

Nothing is loaded. A transformers backend's weights are counted from its config alone: the
model class is built on PyTorch's ``meta`` device (no storage) and its parameters counted, times
the bytes of the dtype the backend would use. The config comes from the local folder or the
Hugging Face cache; for the ``hf`` profile's default hub ids, which these machines do not cache,
a built-in description of the same architecture stands in (:data:`KNOWN_ARCHITECTURES`). A
backend with a weights file (ultralytics, segment-anything, GGUF, a trained student) is sized by
its files. The offline profile's backends run on the CPU: their packaged files are reported.

Activations are a rough upper bound for one forward pass over the configured batch
(``batching.max_batch``): the widest layer's buffers, i.e. the MLP expansion and the attention
scores of every image token, input and output, as :func:`activation_bytes` computes. On top, each
GPU process holds a CUDA context (:data:`CUDA_CONTEXT_GB`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vpagent.config import ROLES, Settings
from vpagent.tools.config import RoleConfig
from vpagent.tools.registry import REMOTE_BACKENDS

GB = 1024**3
CUDA_CONTEXT_GB = 0.5  # CUDA context, cuBLAS/cuDNN workspaces: what PyTorch holds before a model
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx", ".tflite", ".pb")

# backend -> the transformers class its code loads (tools/hf, vpagent/student)
MODEL_CLASSES: dict[str, str] = {
    "owlvit": "AutoModelForZeroShotObjectDetection",
    "grounding-dino": "AutoModelForZeroShotObjectDetection",
    "clip": "AutoModel",
    "blip": "BlipForConditionalGeneration",
    "blip-vqa": "BlipForQuestionAnswering",
    "dpt": "AutoModelForDepthEstimation",
    "sam-hf": "SamModel",
    "vlm": "AutoModelForImageTextToText",
}
# torch backends that run in float32 whatever the device (segment-anything: autocast only)
FLOAT32_WEIGHTS = frozenset({"sam"})
# backends whose model runs in this process but not on the GPU (OpenCV, TFLite, ONNX Runtime)
CPU_BACKENDS = frozenset(
    {
        "ssd-coco",
        "grabcut",
        "classifier-minilm",
        "scene-description",
        "scene-description-llm",
        "rapidocr",
        "vertical-position",
        "haar",
        "llamacpp-vlm",
    }
)
# offline backend -> the packaged files it loads (tools.weights.MANIFEST key prefixes)
PACKAGED: dict[str, tuple[str, ...]] = {
    "ssd-coco": ("ssd.",),
    "classifier-minilm": ("efficientnet.", "minilm."),
    "rapidocr": ("ocr.",),
    "haar": ("haar.",),
}
SHARES: dict[str, str] = {
    "scene-description": "uses the detector's, matcher's and OCR's models",
    "scene-description-llm": "uses the detector's, matcher's and OCR's models and the planner LLM",
    "grabcut": "no weights (OpenCV GrabCut)",
    "vertical-position": "no weights (a rule on image position)",
}

_VIT_L = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
}
# BLIP checkpoints keep a separate LM head (470M / 385M parameters as published)
_UNTIED = {"tie_word_embeddings": False, "text_config": {"tie_word_embeddings": False}}
# The hf profile's defaults, described with the hyperparameters of their published configs, so
# a plan needs no download. (config class, keyword arguments)
KNOWN_ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "google/owlv2-base-patch16-ensemble": (
        "Owlv2Config",
        {"vision_config": {"image_size": 960, "patch_size": 16}},
    ),
    "facebook/sam-vit-base": ("SamConfig", {}),
    "openai/clip-vit-large-patch14": (
        "CLIPConfig",
        {
            "text_config": {
                "hidden_size": 768,
                "intermediate_size": 3072,
                "num_attention_heads": 12,
                "num_hidden_layers": 12,
            },
            "vision_config": {**_VIT_L, "image_size": 224, "patch_size": 14},
            "projection_dim": 768,
        },
    ),
    "Salesforce/blip-image-captioning-large": (
        "BlipConfig",
        {"vision_config": {**_VIT_L, "image_size": 384, "patch_size": 16}, **_UNTIED},
    ),
    "Salesforce/blip-vqa-capfilt-large": (
        "BlipConfig",
        {"vision_config": {**_VIT_L, "image_size": 480, "patch_size": 16}, **_UNTIED},
    ),
    "Intel/dpt-large": (
        "DPTConfig",
        {
            **_VIT_L,
            "image_size": 384,
            "patch_size": 16,
            "backbone_out_indices": [5, 11, 17, 23],
            "neck_hidden_sizes": [256, 512, 1024, 1024],
        },
    ),
}


class RoleMemory(BaseModel):
    """One role's estimate. Sizes in GiB; ``parameters`` when counted from a config."""

    role: str
    backend: str
    model: str = ""
    place: str  # "gpu", "cpu", "remote"
    dtype: str = ""
    parameters: int | None = None
    weights_gb: float = 0.0
    activations_gb: float = 0.0
    source: str = ""  # where the numbers come from
    shared_with: str = ""  # a role whose loaded model this one reuses

    @property
    def gpu_gb(self) -> float:
        if self.place != "gpu" or self.shared_with:
            return 0.0
        return self.weights_gb + self.activations_gb


class MemoryPlan(BaseModel):
    profile: str
    batch: int
    gpu_gb: float | None  # the budget checked against; None: no GPU given or found
    roles: list[RoleMemory]
    cuda_context_gb: float = CUDA_CONTEXT_GB
    total_gpu_gb: float
    fits: bool | None
    together: list[str]  # roles that fit on the GPU together, in role order
    elsewhere: list[str]  # GPU roles that do not fit beside them


def activation_bytes(vision: dict[str, Any], batch: int, bytes_per_value: int) -> int:
    """Rough peak activations of one forward pass of a ViT-style encoder over ``batch`` images.

    Inference keeps one layer's buffers at a time; the widest are the MLP expansion
    (tokens x intermediate) and the attention scores (heads x tokens^2), each with its input and
    output alive: ``2 * batch * tokens * (intermediate + heads * tokens) * bytes``. Memory-
    efficient attention kernels need less; decoders' key/value caches are not counted.
    """
    image = vision.get("image_size") or 224
    patch = vision.get("patch_size") or 16
    side = image[0] if isinstance(image, list | tuple) else image
    patch = patch[0] if isinstance(patch, list | tuple) else patch
    tokens = (int(side) // int(patch)) ** 2 + 1
    hidden = int(vision.get("hidden_size") or 768)
    intermediate = int(vision.get("intermediate_size") or vision.get("mlp_dim") or 4 * hidden)
    heads = int(vision.get("num_attention_heads") or 12)
    return 2 * batch * tokens * (intermediate + heads * tokens) * bytes_per_value


def _vision_part(config: Any) -> dict[str, Any]:
    """The image encoder's hyperparameters as a dict (the config itself when it is one)."""
    for name in ("vision_config", "backbone_config"):
        part = getattr(config, name, None)
        if part is not None:
            return part.to_dict() if hasattr(part, "to_dict") else dict(part)
    return config.to_dict()


def _in_hub_cache(model: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except ValueError:  # not a hub id (HFValidationError)
        return False


def _load_config(model: str) -> tuple[Any, str] | None:
    """(transformers config, where it came from) for a folder, a cached hub id or a known id."""
    import transformers

    folder = Path(model).expanduser()
    if folder.is_dir() and (folder / "config.json").is_file():
        return transformers.AutoConfig.from_pretrained(folder), "config.json"
    if not folder.exists() and _in_hub_cache(model):
        return transformers.AutoConfig.from_pretrained(model), "hub cache config"
    known = KNOWN_ARCHITECTURES.get(model)
    if known is None:
        return None
    class_name, kwargs = known
    return getattr(transformers, class_name)(**kwargs), "built-in config"


def count_parameters(config: Any, class_name: str) -> int:
    """Parameters of ``class_name`` built from ``config`` on the meta device (no memory)."""
    import torch
    import transformers

    model_class = getattr(transformers, class_name)
    with torch.device("meta"):
        auto = class_name.startswith("Auto")
        model = model_class.from_config(config) if auto else model_class(config)
    return sum(p.numel() for p in model.parameters())


def _files_size(model: str) -> int | None:
    """Bytes of the weights files at ``model`` (a file or a folder), None when not there."""
    path = Path(model).expanduser()
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
        return sum(p.stat().st_size for p in files) if files else None
    return None


def _packaged_size(prefixes: tuple[str, ...]) -> int | None:
    from vpagent.tools import weights
    from vpagent.tools.errors import ModelUnavailable

    try:
        return sum(
            weights.locate(key).stat().st_size
            for key in weights.MANIFEST
            if key.startswith(prefixes)
        )
    except ModelUnavailable:
        return None


def _dtype(backend: str, options: dict[str, Any], on_gpu: bool) -> tuple[str, int]:
    """The dtype name and bytes per parameter the backend would run in (tools/hf/_base.py)."""
    dtype = options.get("dtype") or "auto"
    if backend in FLOAT32_WEIGHTS or not on_gpu:
        dtype = "float32" if dtype == "auto" else dtype
    elif dtype == "auto":
        dtype = "bfloat16" if backend == "vlm" else "float16"
    return dtype, 4 if dtype == "float32" else 2


def _place(backend: str, options: dict[str, Any], device: str) -> str:
    if backend in REMOTE_BACKENDS:
        return "remote"
    if backend in CPU_BACKENDS:
        return "cpu"
    chosen = str(options.get("device") or device)
    return "cpu" if chosen == "cpu" or chosen == "mps" else "gpu"


def estimate_role(role: str, config: RoleConfig, device: str, batch: int) -> RoleMemory:
    """One role's weights and activations, from its configuration alone."""
    backend, model, options = config.backend, config.model or "", config.options
    place = _place(backend, options, device)
    entry = RoleMemory(role=role, backend=backend, model=model, place=place)
    if place == "remote":
        return entry.model_copy(update={"source": "served by the endpoint, nothing held here"})
    if backend in SHARES:
        return entry.model_copy(update={"source": SHARES[backend]})
    if backend in PACKAGED:
        size = _packaged_size(PACKAGED[backend])
        source = "packaged files" if size is not None else "packaged files not installed"
        return entry.model_copy(update={"weights_gb": (size or 0) / GB, "source": source})
    dtype, width = _dtype(backend, options, place == "gpu")
    entry = entry.model_copy(update={"dtype": dtype})
    class_name = MODEL_CLASSES.get(backend)
    loaded = _load_config(model) if class_name and model else None
    if loaded is not None:
        hf_config, source = loaded
        parameters = count_parameters(hf_config, class_name)
        activations = activation_bytes(_vision_part(hf_config), batch, width)
        return entry.model_copy(
            update={
                "parameters": parameters,
                "weights_gb": parameters * width / GB,
                "activations_gb": activations / GB,
                "source": source,
            }
        )
    size = _files_size(model)
    if size is None:
        return entry.model_copy(update={"source": "unknown: no config or weights file found"})
    # a checkpoint file's bytes as they would sit in memory; activations not estimated
    return entry.model_copy(update={"weights_gb": size / GB, "source": "size of the weights files"})


def _mark_shared(roles: list[RoleMemory]) -> list[RoleMemory]:
    """Roles served by one loaded model (the vlm backend, one student) count it once."""
    first: dict[tuple[str, str, str], str] = {}
    marked = []
    for entry in roles:
        key = (entry.backend, entry.model, entry.place)
        if entry.backend in ("vlm", "student") and key in first:
            entry = entry.model_copy(update={"shared_with": first[key]})
        first.setdefault(key, entry.role)
        marked.append(entry)
    return marked


def detected_gpu_gb() -> float | None:
    """Total memory of the first CUDA GPU, or None without one (or without torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / GB


def plan_memory(settings: Settings, gpu_gb: float | None = None) -> MemoryPlan:
    """Estimate every role and check which fit together on a ``gpu_gb`` GPU (None: this one's)."""
    batch = settings.batching.max_batch
    roles = _mark_shared(
        [estimate_role(r, getattr(settings.tools, r), settings.device, batch) for r in ROLES]
    )
    budget = gpu_gb if gpu_gb is not None else detected_gpu_gb()
    on_gpu = [r for r in roles if r.gpu_gb > 0]
    total = CUDA_CONTEXT_GB + sum(r.gpu_gb for r in on_gpu) if on_gpu else 0.0
    together, elsewhere, used = [], [], CUDA_CONTEXT_GB
    for entry in on_gpu:
        if budget is None or used + entry.gpu_gb <= budget:
            together.append(entry.role)
            used += entry.gpu_gb
        else:
            elsewhere.append(entry.role)
    return MemoryPlan(
        profile=settings.profile,
        batch=batch,
        gpu_gb=budget,
        roles=roles,
        total_gpu_gb=total,
        fits=None if budget is None else not elsewhere,
        together=together,
        elsewhere=elsewhere,
    )
