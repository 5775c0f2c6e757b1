"""Loading images from whatever users hand us, with clear errors for bad input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000  # about 6300 x 6300
MIN_IMAGE_SIDE = 8

ImageInput = str | Path | bytes | Image.Image | np.ndarray


class ImageError(ValueError):
    """The input is not a usable image; the message says why."""


def _from_pil(image: Image.Image) -> np.ndarray:
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        return _from_deep_grey(image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _from_deep_grey(image: Image.Image) -> np.ndarray:
    """A 16-bit (or 32-bit integer or float) grey image scaled to 8 bits. PIL's own conversion
    clips every value above 255, so a 16-bit photo would become white."""
    values = np.asarray(image, dtype=np.float64)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 65535:
        raise ImageError(
            f"a grey image of mode {image.mode} with values from {low} to {high} "
            "has no 8-bit reading"
        )
    if image.mode.startswith("I;16") or high > 255:
        values = values * (255 / 65535)
    elif image.mode == "F" and high <= 1.0:
        values = values * 255
    grey = np.rint(values).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _open(data: Any, name: str) -> np.ndarray:
    try:
        with Image.open(data) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ImageError(
                    f"{name} is {image.width}x{image.height}; "
                    f"the limit is {MAX_IMAGE_PIXELS} pixels"
                )
            image.load()
            return _from_pil(image)
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise ImageError(f"{name} is not a readable image ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data
        raise ImageError(f"{name} is corrupt or truncated ({error})") from None


def load_image(source: ImageInput) -> np.ndarray:
    """Return an RGB uint8 array (H, W, 3) from a path, bytes, a PIL image or a numpy array."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no image file at {path}")
        pixels = _open(path, str(path))
    elif isinstance(source, bytes | bytearray):
        if not source:
            raise ImageError("the image data is empty")
        pixels = _open(io.BytesIO(bytes(source)), "the uploaded data")
    elif isinstance(source, Image.Image):
        pixels = _from_pil(source)
    elif isinstance(source, np.ndarray):
        pixels = _from_array(source)
    else:
        raise ImageError(f"cannot read an image from {type(source).__name__}")
    if min(pixels.shape[:2]) < MIN_IMAGE_SIDE:
        raise ImageError(f"the image is too small ({pixels.shape[1]}x{pixels.shape[0]})")
    return pixels


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_IMAGE_PIXELS:
        raise ImageError(f"the image has more than {MAX_IMAGE_PIXELS} pixels")
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and array.size and float(array.max()) <= 1.0:
            array = array * 255.0
        array = np.clip(array, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[:, :, :3])
