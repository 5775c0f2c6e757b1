"""What every real-model backend shares: lazy, thread-safe loading, device and dtype choice,
model-source resolution with actionable errors, and image checks.

A backend is built from ``Backend(model, device="auto", **options)``. Nothing heavy happens in
the constructor: the first call loads the weights (under a lock, once) and later calls reuse
them. ``device="auto"`` picks CUDA when it is available (half precision) and the CPU otherwise
(float32); an explicit ``"cpu"``, ``"cuda"`` or ``"cuda:1"`` is honoured, and the option
``dtype`` ("float16", "bfloat16", "float32") overrides the precision.
"""

from __future__ import annotations

import os
import threading
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.types import ToolInfo

HF_EXTRA_HINT = "install the hf extra: pip install 'vpagent[hf]'"
_DTYPES = ("float16", "bfloat16", "float32")


def resolve_device(device: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when torch sees a GPU, else ``"cpu"``; anything else as given."""
    import torch

    if device in ("auto", "", None):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(
            f"device {device!r} was asked for but torch sees no CUDA GPU; use 'cpu'"
        )
    return str(device)


def resolve_dtype(device: str, dtype: str | None = None) -> Any:
    """float16 on CUDA, float32 elsewhere, unless ``dtype`` is float16, bfloat16 or float32."""
    import torch

    if dtype in (None, "auto"):
        return torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {_DTYPES} or 'auto', not {dtype!r}")
    return getattr(torch, dtype)


def require(module: str, what: str) -> Any:
    """Import ``module`` or raise ModelUnavailable telling the user what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailable(
            f"{what} needs the Python package {module!r}; {HF_EXTRA_HINT}"
        ) from exc


def _looks_like_path(model: str) -> bool:
    """Whether ``model`` is meant as a filesystem path rather than a hub id ("org/name")."""
    if model.startswith(("/", "./", "../", "~", ".\\")) or "\\" in model:
        return True
    if os.path.isabs(model):
        return True
    return model.count("/") > 1


def hub_offline() -> bool:
    try:
        from huggingface_hub import is_offline_mode

        return bool(is_offline_mode())
    except ImportError:  # pragma: no cover - very old hub
        return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def resolve_pretrained(model: str, backend: str) -> str:
    """Return what to hand to ``from_pretrained``: an existing local folder, or a hub id.

    Raises ModelUnavailable (never downloads, never hangs) when the folder does not exist, or
    when the hub id is not in the local Hugging Face cache while the hub is offline.
    """
    if not model:
        raise ModelUnavailable(f"{backend}: no model given; pass a hub id or a local folder")
    local = Path(model).expanduser()
    if local.exists():
        if local.is_dir() and not (local / "config.json").exists():
            raise ModelUnavailable(
                f"{backend}: {local} has no config.json; point it at a folder written by "
                "save_pretrained() (or a downloaded hub snapshot)"
            )
        return str(local)
    if _looks_like_path(model):
        raise ModelUnavailable(
            f"{backend}: model folder {local} does not exist; download the model on a connected "
            f"machine (e.g. `hf download <org/name> --local-dir {local}`) and copy it there"
        )
    if hub_offline():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "config.json")
        if not isinstance(cached, str):
            from huggingface_hub import constants

            raise ModelUnavailable(
                f"{backend}: hub model {model!r} is not in the local Hugging Face cache "
                f"({constants.HF_HUB_CACHE}) and vpagent runs offline (HF_HUB_OFFLINE=1). "
                f"Run `hf download {model}` on a connected machine and copy the cache over, or "
                "pass a local folder written by save_pretrained()"
            )
    return model


def resolve_weights_file(path: str, backend: str, how: str) -> str:
    """An existing weights file, or ModelUnavailable naming the path and ``how`` to get it."""
    if not path:
        raise ModelUnavailable(f"{backend}: no weights path given; {how}")
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelUnavailable(f"{backend}: weights file {file} does not exist; {how}")
    return str(file)


@contextmanager
def loading(backend: str, model: str) -> Iterator[None]:
    """Turn a library's load failure (missing file, bad folder) into ModelUnavailable."""
    try:
        yield
    except ModelUnavailable:
        raise
    except (OSError, ValueError, KeyError, FileNotFoundError) as exc:
        raise ModelUnavailable(
            f"{backend}: could not load {model!r}: {exc}. Pass a hub id that is in the local cache "
            "or a local folder/file with the weights"
        ) from exc


def as_rgb(image: Any) -> np.ndarray:
    """Check and normalise one image to an RGB uint8 (H, W, 3) array."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {array.shape}")
    if array.shape[2] == 4:
        array = array[:, :, :3]
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and array.max() <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"empty image of shape {array.shape}")
    return np.ascontiguousarray(array)


def to_pil(image: np.ndarray) -> Any:
    from PIL import Image as PILImage

    return PILImage.fromarray(as_rgb(image))


def check_lengths(name: str, *sequences: list[Any]) -> None:
    lengths = {len(s) for s in sequences}
    if len(lengths) > 1:
        raise ValueError(f"{name}: every argument list must have one entry per image")


class LazyBackend:
    """Mixin: lazy, once-only, thread-safe loading and a common ``info()``.

    Put it first in the bases (``class X(LazyBackend, Matcher)``) so its ``info()`` wins over the
    role's abstract one; the role class provides ``role``. Subclasses set ``backend`` and
    implement ``_load()``, which sets whatever it needs on ``self`` and returns the resolved
    weights location (a path or a hub id).
    """

    backend: ClassVar[str] = ""
    note: ClassVar[str] = ""

    def __init__(self, model: str, device: str = "auto", **options: Any) -> None:
        self.model = str(model)
        self.requested_device = device
        self.options = dict(options)
        self._lock = threading.RLock()
        self._loaded = False
        self._weights: str | None = None
        self._device: str | None = None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.requested_device)
        return self._device

    @property
    def dtype(self) -> Any:
        return resolve_dtype(self.device, self.options.get("dtype"))

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        """Load the weights now (otherwise the first call does)."""
        with self._lock:
            if not self._loaded:
                self._weights = self._load()
                self._loaded = True

    @abstractmethod
    def _load(self) -> str: ...

    def _from_pretrained(self, processor_class: str, model_class: str) -> tuple[str, Any, Any]:
        """(source, processor, model) through transformers' ``from_pretrained``, in our dtype.

        The model comes back on the CPU, as loaded, so callers can check its type first.
        """
        source = resolve_pretrained(self.model, self.backend)
        transformers = require("transformers", f"the {self.backend} backend")
        with loading(self.backend, self.model):
            processor = getattr(transformers, processor_class).from_pretrained(source)
            model = getattr(transformers, model_class).from_pretrained(source, dtype=self.dtype)
        return source, processor, model

    def info(self) -> ToolInfo:
        device = self._device or str(self.requested_device)
        note = self.note
        if not self._loaded:
            note = f"{note} (not loaded yet)".strip()
        return ToolInfo(
            role=getattr(self, "role", ""),
            backend=self.backend,
            model=self.model,
            weights=self._weights,
            device=device,
            stand_in=False,
            note=note,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, device={self.requested_device!r})"
