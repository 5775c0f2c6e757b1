"""Scene-text eyes: what the offline pack's specialists find in a photo, as words in the prompt.

The offline VQA stand-in (``vpagent.tools.offline.scene``) describes a photo from the detector
(class, box, size, colour of every object), the ImageNet classifier's labels, the main colours
and OCR. :class:`SceneText` runs that same code (``analyze_scene`` with the pack's
``offline_specialists``) once per photo and writes the facts compactly, so a small language
model reads the objects, their number and where they are as tokens it already knows (bottom-up
attention's regions, as text): ``dog: top left (12, 25) 12% brown`` is a dog whose centre
lies 12% across and 25% down the image, covering 12% of it, mostly brown.

The text is cached by the photo's content hash, the eyes' name and :func:`settings_digest`: a
digest of the scene builder's and the detector's code and settings (calibration included), so a
recalibrated detector or a changed formatter never reads a stale description.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vpagent.images import load_image
from vpagent.student.encoder import image_digest

MAX_OBJECTS = 10  # the best-scoring objects written out (the counts cover every object found)
FORMAT_VERSION = "2"  # bump when scene_prompt_text's wording changes
SCENE_HEADER = "Scene:"

Analyzer = Callable[[np.ndarray], Any]  # RGB image -> vpagent.tools.offline.scene.SceneFacts


def _percent(value: float) -> int:
    return round(100 * min(max(value, 0.0), 1.0))


def facts_text(facts: Any, max_objects: int = MAX_OBJECTS) -> str:
    """Compact words for a ``SceneFacts``: counts, then each object's place, size and colour."""
    width, height = max(facts.width, 1), max(facts.height, 1)
    lines = []
    counts = Counter(obj.label for obj in facts.objects)
    if counts:
        listed = ", ".join(f"{n} {label}" for label, n in counts.most_common())
        lines.append(f"Objects: {listed}.")
        for obj in facts.objects[:max_objects]:
            cx = (obj.box.x0 + obj.box.x1) / 2 / width
            cy = (obj.box.y0 + obj.box.y1) / 2 / height
            colour = f" {obj.color}" if obj.color else ""
            lines.append(
                f"{obj.label}: {obj.position} ({_percent(cx)}, {_percent(cy)}) "
                f"{_percent(obj.area_fraction)}%{colour}"
            )
    else:
        lines.append("Objects: none detected.")
    if facts.labels:
        lines.append("Looks like: " + ", ".join(label for label, _ in facts.labels) + ".")
    if facts.text:
        lines.append("Text: " + "; ".join(f'"{line.text}"' for line in facts.text[:4]) + ".")
    return "\n".join(lines)


def with_scene(prompt: str, scene: str | None) -> str:
    """The user prompt with the scene text before it (unchanged when there is none)."""
    return f"{SCENE_HEADER}\n{scene}\n{prompt}" if scene else prompt


def _module_source(name: str) -> str:
    import importlib

    return inspect.getsource(importlib.import_module(name))


def _settings(tool: Any) -> dict[str, str]:
    """A tool's simple settings (numbers, strings, flags and their containers) by name."""
    simple = (int, float, str, bool, type(None), tuple, list, dict)
    found = {"class": type(tool).__qualname__}
    for name, value in sorted(vars(tool).items()):
        if isinstance(value, simple):
            found[name] = repr(value)
        elif hasattr(value, "model_dump"):  # pydantic settings, e.g. the detector's calibration
            found[name] = json.dumps(value.model_dump(mode="json"), sort_keys=True)
    return found


def settings_digest(specialists: tuple[Any, ...]) -> str:
    """sha256 (16 hex) of the scene builder's and detector's code, their settings and ours."""
    digest = hashlib.sha256(FORMAT_VERSION.encode())
    digest.update(str(MAX_OBJECTS).encode())
    for module in ("vpagent.tools.offline.scene", "vpagent.tools.offline.detector"):
        digest.update(_module_source(module).encode())
    for tool in specialists:
        digest.update(json.dumps(_settings(tool), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def offline_analyzer() -> tuple[Analyzer, str]:
    """The offline pack's scene analysis (detector, classifier labels, colours, OCR) and its
    settings digest; ImportError or ModelUnavailable when the pack is missing."""
    from vpagent.tools.offline.scene import analyze_scene, offline_specialists

    detector, matcher, ocr = offline_specialists()

    def analyze(rgb: np.ndarray) -> Any:
        return analyze_scene(rgb, detector, matcher, ocr)

    return analyze, settings_digest((detector, matcher, ocr))


class SceneText:
    """Photo -> scene text, computed once per photo and cached (memory, optionally disk)."""

    def __init__(
        self,
        eyes: str,
        cache_dir: Path | None = None,
        *,
        analyzer: Analyzer | None = None,
        digest: str | None = None,
        memory_items: int = 4096,
    ) -> None:
        self.eyes = eyes
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._analyzer = analyzer
        self._digest = digest
        self.memory_items = memory_items
        self._memory: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def _load(self) -> tuple[Analyzer, str]:
        with self._lock:
            if self._analyzer is None:
                self._analyzer, digest = offline_analyzer()
                self._digest = self._digest or digest
            if self._digest is None:
                raise ValueError("a SceneText with its own analyzer needs its settings digest")
            return self._analyzer, self._digest

    @property
    def digest(self) -> str:
        """The scene builder's settings digest (loads the offline specialists if needed)."""
        return self._load()[1]

    def key(self, image: np.ndarray | Path) -> str:
        """The cache key: the photo's content hash, the eyes' name and the settings digest."""
        eyes = self.eyes.replace("+", "-")
        return f"{image_digest(image)}-{eyes}-{self.digest}"

    def _disk_path(self, key: str) -> Path | None:
        return self.cache_dir / key[:2] / f"{key}.txt" if self.cache_dir is not None else None

    def describe(self, image: np.ndarray | Path) -> str:
        """The scene text of an RGB uint8 image or an image file."""
        analyze, _ = self._load()
        key = self.key(image)
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._disk_path(key)
        if path is not None and path.is_file():
            text = path.read_text(encoding="utf-8")
        else:
            pixels = image if isinstance(image, np.ndarray) else load_image(image)
            text = facts_text(analyze(pixels))
            if path is not None:
                _write_atomically(path, text)
        self._memory[key] = text
        while len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return text


def default_cache_dir() -> Path:
    """``<cache>/students/scene-text``: scene text shared by every student on this machine."""
    from vpagent.offline_env import cache_root

    return cache_root() / "students" / "scene-text"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".txt.tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
