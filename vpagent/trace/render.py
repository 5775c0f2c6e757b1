"""The visual rationale: a self-contained HTML page of a trace, every step drawn on the image."""

from __future__ import annotations

import base64
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
from PIL import Image, ImageDraw

from vpagent.tools.types import Mask
from vpagent.trace.records import Step, Trace
from vpagent.trace.store import atomic_write_text

MAX_PREVIEW_SIDE = 640
REGION_COLOUR = (59, 130, 246)  # the region a step looked at
RESULT_COLOUR = (34, 197, 94)  # what it found
MASK_COLOUR = (236, 72, 153)


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent),
        autoescape=True,  # programs, answers and OCR text are untrusted
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("rationale.html.j2")


def draw_step(pixels: np.ndarray, step: Step) -> Image.Image:
    """The image with this step's region, result boxes and mask drawn on it."""
    image = Image.fromarray(pixels).convert("RGBA")
    scale = min(1.0, MAX_PREVIEW_SIDE / max(image.size))
    artifacts = step.artifacts
    if artifacts.mask is not None:
        mask = Mask.from_rle(artifacts.mask).pixels
        overlay = np.zeros((*mask.shape, 4), dtype=np.uint8)
        overlay[mask] = (*MASK_COLOUR, 110)
        image = Image.alpha_composite(image, Image.fromarray(overlay, "RGBA"))
    image = image.convert("RGB").resize(
        (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    )
    pen = ImageDraw.Draw(image)
    width = max(2, round(3 * scale))
    if artifacts.region is not None:
        pen.rectangle([v * scale for v in artifacts.region], outline=REGION_COLOUR, width=width)
    for hit in artifacts.boxes:
        box = [v * scale for v in hit["box"]]
        pen.rectangle(box, outline=RESULT_COLOUR, width=width)
        caption = str(hit.get("label", ""))
        if "score" in hit:
            caption += f" {hit['score']:.2f}"
        if caption.strip():
            pen.text((box[0] + 3, box[1] + 2), caption[:40], fill=RESULT_COLOUR)
    return image


def _data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _rounded(value: Any) -> Any:
    """Floats to 3 decimals, recursively, for display."""
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list | tuple):
        return [_rounded(item) for item in value]
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return value


def _short(value: Any, limit: int = 600) -> str:
    text = value if isinstance(value, str) else json.dumps(_rounded(value), default=str)
    return text if len(text) <= limit else text[:limit] + " …"


def _ranking(attribute: dict[str, Any] | None) -> str | None:
    """The boxes' evidence for the property a name asked for ("black" of "black dog")."""
    if not attribute or not attribute.get("ranked"):
        return None
    scores = ", ".join(
        ("n/a" if score is None else f"{score:.2f}") + ("" if holds else " (no)")
        for score, holds in zip(attribute["scores"], attribute["holds"], strict=True)
    )
    return f"ranked by '{attribute['property']}': {scores or 'no box has it'}"


def render_html(trace: Trace, pixels: np.ndarray) -> str:
    """A self-contained HTML page (images inline) explaining the run step by step."""
    steps = [
        {
            "index": step.index,
            "tool": step.tool,
            "args": _short({k: v for k, v in step.args.items() if k not in ("image",)}),
            "result": _short(step.result) if step.ok else None,
            "error": step.error,
            "duration_ms": step.duration_s * 1000,
            "picture": _data_url(draw_step(pixels, step)) if step.artifacts.drawable else None,
            "ranking": _ranking(step.artifacts.attribute),
            "unverified": step.artifacts.unverified,
        }
        for step in trace.steps
    ]
    overview = Image.fromarray(pixels)
    overview.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE))
    return _template().render(
        trace=trace,
        program_lines=trace.program.splitlines(),
        steps=steps,
        overview=_data_url(overview),
    )


def save_html(trace: Trace, pixels: np.ndarray, directory: Path) -> Path:
    """Write ``<directory>/<id>.html`` atomically and return its path."""
    path = Path(directory) / f"{trace.id}.html"
    atomic_write_text(path, render_html(trace, pixels))
    return path
