"""The app's inputs: what the image component sent, for load_image; the bundled example photos."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from vpagent.images import ImageError

REPO_ROOT = Path(__file__).resolve().parents[1]


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
DEFAULT_QUESTION = "What is in this image?"


def image_source(value: Any) -> Any:
    """What the image input sent, unprocessed, as something ``load_image`` reads.

    The events run with ``preprocess=False``: gradio's own image preprocessing decodes the upload
    with PIL and fails on a corrupt file with a bare "Error" before the app can explain it.
    """
    if isinstance(value, dict):
        if value.get("path"):
            return str(value["path"])
        url = value.get("url") or ""
        if url.startswith("data:") and "," in url:
            try:
                return base64.b64decode(url.split(",", 1)[1], validate=False)
            except ValueError:
                return b""
        return None
    return value


def image_problem(error: ImageError, source: Any) -> str:
    """The loader's complaint, worded for the page and without server paths."""
    detail = str(error)
    if "readable" in detail or "corrupt" in detail or "empty" in detail:
        return (
            "The uploaded file could not be read as an image: it may be corrupt, truncated, "
            "or not an image at all. Try a JPEG, PNG or WebP photo."
        )
    if isinstance(source, str) and source:
        detail = detail.replace(source, "the file")
    return f"The image cannot be used: {detail}."


def data_dir() -> Path:
    """The bundled data folder: ``$VPAGENT_DATA_DIR``, else ``<repo>/../shared/data``."""
    configured = os.environ.get("VPAGENT_DATA_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


def find_examples(directory: Path | None = None) -> list[tuple[str, str]]:
    """(photo path, question) pairs for the bundled photos; empty if the folder is missing.

    The question is the first one ``dev.jsonl`` asks about that photo, if there is one.
    """
    directory = data_dir() if directory is None else Path(directory)
    images = directory / "images"
    if not images.is_dir():
        return []
    questions: dict[str, str] = {}
    dev = directory / "dev.jsonl"
    if dev.is_file():
        for line in dev.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(item, dict) and isinstance(item.get("question"), str):
                questions.setdefault(Path(str(item.get("image", ""))).name, item["question"])
    photos = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [(str(p), questions.get(p.name, DEFAULT_QUESTION)) for p in photos]
