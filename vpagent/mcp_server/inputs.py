"""Images that an agent framework hands over: base64, a data URL, or a file path inside the
folders the user allowed.

A model picks these strings, so a path is a request to read a file on the user's machine: it is
refused, before anything is read, unless it resolves (symlinks followed) to a regular file with
an image extension, under the size limit, inside one of the allowed roots. With no roots (the
default) every path is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?),", re.ASCII)
BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}\s*$", re.ASCII)
MIN_BASE64_CHARS = 32  # shorter strings are names, not pictures


class ImageRefused(ValueError):
    """The image argument cannot be used; the message says why and what to do instead."""


@dataclass(frozen=True)
class ImagePolicy:
    """What image arguments are accepted: ``roots`` for paths, ``max_bytes`` for everything."""

    roots: tuple[Path, ...] = ()
    max_bytes: int = 20 * 1024 * 1024

    @classmethod
    def of(cls, roots: Iterable[str | Path], max_bytes: int) -> ImagePolicy:
        """A policy over existing folders (resolved now); ValueError for one that is not."""
        resolved = []
        for root in roots:
            path = Path(root).expanduser()
            if not path.is_dir():
                raise ValueError(f"--allow-dir {root}: not a folder")
            resolved.append(path.resolve())
        return cls(tuple(resolved), max_bytes)

    def read(self, image: str) -> bytes:
        """The image file's bytes; :class:`ImageRefused` for anything this policy refuses."""
        if not isinstance(image, str) or not image.strip():
            raise ImageRefused("the image is empty: give base64, a data URL or a file path")
        text = image.strip()
        if text.startswith("data:"):
            return self._decode(_data_url_payload(text))
        if len(text) >= MIN_BASE64_CHARS and BASE64.match(text) and "." not in text:
            return self._decode(text)
        return self._read_path(text)

    def _decode(self, payload: str) -> bytes:
        if len(payload) * 3 // 4 > self.max_bytes + 3:
            raise ImageRefused(f"the image is larger than {self._limit()}")
        try:
            data = base64.b64decode("".join(payload.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ImageRefused(f"the image is not valid base64 ({error})") from None
        if not data:
            raise ImageRefused("the image data is empty")
        if len(data) > self.max_bytes:
            raise ImageRefused(f"the image is larger than {self._limit()}")
        return data

    def _read_path(self, text: str) -> bytes:
        if not self.roots:
            raise ImageRefused(
                f"file paths are not allowed ({text!r}): send the image as base64 or a data URL, "
                "or start the server with --allow-dir FOLDER to allow paths inside FOLDER"
            )
        try:
            resolved = Path(text).expanduser().resolve(strict=True)
        except (OSError, RuntimeError):
            raise ImageRefused(f"no file at {text!r}") from None
        if not any(resolved.is_relative_to(root) for root in self.roots):
            allowed = ", ".join(str(root) for root in self.roots)
            raise ImageRefused(
                f"{text!r} is outside the allowed folders ({allowed}); symlinks count where "
                "they point"
            )
        if resolved.suffix.lower() not in IMAGE_SUFFIXES:
            raise ImageRefused(
                f"{text!r} is not an image file (expected one of "
                f"{', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        info = resolved.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ImageRefused(f"{text!r} is not a regular file")
        if info.st_size > self.max_bytes:
            raise ImageRefused(f"{text!r} is larger than {self._limit()}")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(resolved, flags), "rb") as handle:  # resolved: no link left
            data = handle.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:  # it grew since the check
            raise ImageRefused(f"{text!r} is larger than {self._limit()}")
        return data

    def _limit(self) -> str:
        return f"{self.max_bytes / (1024 * 1024):g} MB"


def _data_url_payload(text: str) -> str:
    match = DATA_URL.match(text)
    if match is None:
        raise ImageRefused("a data URL must look like data:image/png;base64,...")
    media_type = match.group("type") or ""
    if not media_type.startswith("image/"):
        raise ImageRefused(f"the data URL is {media_type or 'untyped'}, not an image")
    if ";base64" not in match.group("params"):
        raise ImageRefused("the data URL must be base64-encoded (data:image/...;base64,...)")
    return text[match.end() :]
