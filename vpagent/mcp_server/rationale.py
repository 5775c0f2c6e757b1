"""The visual rationale as one PNG: the image with every drawable step of a trace drawn on it,
side by side with a caption each (the HTML rationale's pictures, for clients that show images)."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image, ImageDraw

from vpagent.trace.records import Step, Trace
from vpagent.trace.render import MAX_PREVIEW_SIDE, draw_step

TILE_SIDE = 320
COLUMNS = 3
MAX_TILES = 9
CAPTION_HEIGHT = 28
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)


def _caption(step: Step) -> str:
    if not step.ok:
        return f"{step.index}. {step.tool}: error"
    result = step.result if isinstance(step.result, str) else json.dumps(step.result, default=str)
    if isinstance(step.result, list):
        result = f"{len(step.result)} found"
    return f"{step.index}. {step.tool} -> {result}"[:60]


def _tile(picture: Image.Image, caption: str) -> Image.Image:
    picture = picture.copy()
    picture.thumbnail((TILE_SIDE, TILE_SIDE))
    tile = Image.new("RGB", (TILE_SIDE, TILE_SIDE + CAPTION_HEIGHT), BACKGROUND)
    tile.paste(picture, ((TILE_SIDE - picture.width) // 2, 0))
    ImageDraw.Draw(tile).text((4, TILE_SIDE + 8), caption, fill=INK)
    return tile


def rationale_png(trace: Trace, pixels: np.ndarray) -> bytes:
    """PNG bytes: one captioned tile per drawable step (at most nine); the plain image, captioned
    with the answer, when no step drew anything."""
    tiles = [
        _tile(draw_step(pixels, step), _caption(step))
        for step in trace.steps
        if step.artifacts.drawable
    ][:MAX_TILES]
    if not tiles:
        overview = Image.fromarray(pixels)
        overview.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE))
        tiles = [_tile(overview, f"answer: {trace.answer}"[:60])]
    columns = min(COLUMNS, len(tiles))
    rows = -(-len(tiles) // columns)
    width, height = tiles[0].size
    sheet = Image.new("RGB", (columns * width, rows * height), BACKGROUND)
    for index, tile in enumerate(tiles):
        sheet.paste(tile, ((index % columns) * width, (index // columns) * height))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
