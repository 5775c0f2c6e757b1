"""GGUF files a user already has (e.g. a VLM and its mmproj projector), registered by sha256.

``vpagent models add NAME --model F.gguf [--mmproj P.gguf]`` checks that the files are GGUF,
hashes them and writes ``<cache>/models/local-models.json``. Using a registered model later
re-hashes a file whose size or modification time changed and refuses it when its sha256 no
longer matches: the model that runs is the one that was registered.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from vpagent.llm.packs import PACKS, PackError, _progress_bar, _show_progress, sha256_file
from vpagent.llm.packs import models_dir as _models_dir

REGISTRY_FILE = "local-models.json"
GGUF_MAGIC = b"GGUF"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class LocalModelError(PackError):
    """A local model cannot be registered or used; the message says why and what to do."""


class RegisteredFile(BaseModel):
    path: str
    sha256: str
    size: int
    mtime_ns: int


class LocalModel(BaseModel):
    """A registered GGUF model, with its optional multimodal projector."""

    name: str
    model: RegisteredFile
    mmproj: RegisteredFile | None = None
    added: str


def registry_path() -> Path:
    return _models_dir() / REGISTRY_FILE


def _read() -> dict[str, LocalModel]:
    path = registry_path()
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {name: LocalModel.model_validate(entry) for name, entry in raw.items()}
    except (OSError, ValueError) as error:
        raise LocalModelError(f"the local model registry {path} is unreadable: {error}") from None


def _write(models: dict[str, LocalModel]) -> None:
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {name: entry.model_dump() for name, entry in sorted(models.items())}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".local-models-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _check_gguf(path: Path, what: str) -> Path:
    file = path.expanduser()
    if not file.is_file():
        raise LocalModelError(f"{what} file {file} does not exist")
    with file.open("rb") as stream:
        if stream.read(4) != GGUF_MAGIC:
            raise LocalModelError(f"{what} file {file} is not a GGUF file (no GGUF header)")
    return file.resolve()


def _register(path: Path, what: str, progress: bool) -> RegisteredFile:
    try:
        file = _check_gguf(path, what)
        stat = file.stat()
        with _progress_bar(f"sha256 {file.name}", stat.st_size, progress) as advance:
            digest = sha256_file(file, advance)
    except OSError as error:
        raise LocalModelError(f"cannot read the {what} file {path}: {error}") from None
    return RegisteredFile(
        path=str(file), sha256=digest, size=stat.st_size, mtime_ns=stat.st_mtime_ns
    )


def add(
    name: str,
    model: Path,
    mmproj: Path | None = None,
    *,
    force: bool = False,
    progress: bool | None = None,
) -> LocalModel:
    """Hash and register ``model`` (and ``mmproj``) under ``name``; ``force`` replaces one."""
    if not NAME_PATTERN.match(name):
        raise LocalModelError(
            f"invalid model name {name!r}: use letters, digits, '.', '_', ':' or '-' (max 64)"
        )
    if name in PACKS:
        raise LocalModelError(f"{name!r} is the name of a model pack; choose another name")
    models = _read()
    if name in models and not force:
        raise LocalModelError(
            f"a local model named {name!r} is already registered; pass --force to replace it"
        )
    show = _show_progress(progress)
    entry = LocalModel(
        name=name,
        model=_register(model, "model", show),
        mmproj=_register(mmproj, "mmproj", show) if mmproj is not None else None,
        added=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    models[name] = entry
    _write(models)
    return entry


def list_models() -> list[LocalModel]:
    return list(_read().values())


def get(name: str) -> LocalModel:
    models = _read()
    if name not in models:
        known = ", ".join(sorted(models)) or "none registered"
        raise LocalModelError(
            f"no local model named {name!r} ({known}); register one with "
            "`vpagent models add NAME --model F.gguf --mmproj P.gguf`"
        )
    return models[name]


def is_registered(name: str) -> bool:
    return name in _read()


def _verify(entry: RegisteredFile, name: str, what: str, progress: bool) -> Path:
    file = Path(entry.path)
    if not file.is_file():
        raise LocalModelError(f"local model {name!r}: the {what} file {file} is gone")
    stat = file.stat()
    if (stat.st_size, stat.st_mtime_ns) == (entry.size, entry.mtime_ns):
        return file
    with _progress_bar(f"sha256 {file.name}", stat.st_size, progress) as advance:
        digest = sha256_file(file, advance)
    if digest != entry.sha256:
        raise LocalModelError(
            f"local model {name!r}: the {what} file {file} has sha256 {digest}, but "
            f"{entry.sha256} was registered; it changed since `vpagent models add`. Re-register "
            "it (`vpagent models add --force`) if the new file is the one you want"
        )
    return file


def verified_files(name: str, *, progress: bool | None = None) -> tuple[Path, Path | None]:
    """The registered (model, mmproj) paths, re-hashed when changed on disk; refused on mismatch."""
    entry = get(name)
    show = _show_progress(progress)
    model = _verify(entry.model, name, "model", show)
    mmproj = _verify(entry.mmproj, name, "mmproj", show) if entry.mmproj is not None else None
    _remember_stats(entry, model, mmproj)
    return model, mmproj


def _remember_stats(entry: LocalModel, model: Path, mmproj: Path | None) -> None:
    """After a successful re-hash (same bytes, new mtime): record the new size and mtime."""
    updated = entry.model_copy(deep=True)
    for record, file in ((updated.model, model), (updated.mmproj, mmproj)):
        if record is not None and file is not None:
            stat = file.stat()
            record.size, record.mtime_ns = stat.st_size, stat.st_mtime_ns
    if updated != entry:
        models = _read()
        models[entry.name] = updated
        with contextlib.suppress(OSError):  # a read-only cache: re-hashed next time instead
            _write(models)
