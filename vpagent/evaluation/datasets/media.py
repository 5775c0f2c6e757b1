"""Images that do not arrive as files: embedded bytes and multi-image items.

Both are written once into a cache folder under a name derived from their content (sha256), so
loading a dataset twice writes nothing new and two datasets share identical pictures.
Multi-image items become one canvas: the pictures side by side, scaled to one height, each
numbered in its top-left corner; the question says so (:func:`multi_image_question`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import platformdirs
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError

CANVAS_HEIGHT_MAX = 768
CANVAS_GAP = 16
LABEL_SIZE = 28
FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}


def default_cache() -> Path:
    """Where decoded and combined dataset images go unless a folder is given."""
    return Path(platformdirs.user_cache_dir("vpagent")) / "datasets"


def _write_once(target: Path, data: bytes) -> Path:
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(target)
    return target


def store_bytes(data: bytes, cache: Path) -> Path | None:
    """Save encoded image bytes under their hash; None if they are not a readable image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            suffix = FORMATS.get(image.format or "", ".img")
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError):
        return None
    return _write_once(cache / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}", data)


def side_by_side(paths: Sequence[Path], cache: Path) -> Path:
    """One PNG with the pictures left to right, numbered 1..N (raises OSError if unreadable)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    target = cache / f"side-by-side-{digest.hexdigest()[:32]}.png"
    if target.is_file():
        return target
    pictures = []
    for path in paths:
        with Image.open(path) as opened:
            pictures.append(opened.convert("RGB"))
    height = min(CANVAS_HEIGHT_MAX, max(picture.height for picture in pictures))
    scaled = [
        picture.resize((max(1, round(picture.width * height / picture.height)), height))
        for picture in pictures
    ]
    width = sum(picture.width for picture in scaled) + CANVAS_GAP * (len(scaled) - 1)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=LABEL_SIZE)
    x = 0
    for number, picture in enumerate(scaled, 1):
        canvas.paste(picture, (x, 0))
        box = draw.textbbox((x + 6, 4), str(number), font=font)
        draw.rectangle((box[0] - 4, box[1] - 4, box[2] + 4, box[3] + 4), fill="white")
        draw.text((x + 6, 4), str(number), fill="black", font=font)
        x += picture.width + CANVAS_GAP
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return _write_once(target, buffer.getvalue())


def multi_image_question(question: str, count: int) -> str:
    """The question as asked about the side-by-side canvas."""
    return (
        f"The picture shows {count} images side by side, numbered 1 to {count} from left to "
        f"right. {question}"
    )
