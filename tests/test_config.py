from pathlib import Path

import pytest

from vpagent.config import ConfigError, load_settings


def test_offline_profile_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.profile == "offline"
    assert settings.tools.detector.backend == "ssd-coco"
    assert settings.tools.segmenter.backend == "grabcut"


def test_toml_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "vpagent.toml"
    config.write_text(
        'profile = "hf"\n[tools.detector]\nmodel = "/models/owlv2"\n[sandbox]\ncpu_seconds = 5\n'
    )
    settings = load_settings(config)
    assert settings.tools.detector.backend == "owlvit"  # profile default kept
    assert settings.tools.detector.model == "/models/owlv2"
    assert settings.sandbox.cpu_seconds == 5
    monkeypatch.setenv("VPAGENT_SANDBOX__CPU_SECONDS", "7")
    monkeypatch.setenv("VPAGENT_TOOLS__OCR__BACKEND", "rapidocr")
    settings = load_settings(config)
    assert settings.sandbox.cpu_seconds == 7


@pytest.mark.parametrize(
    ("overrides", "bad_key"),
    [
        ({"devise": "cpu"}, "devise"),
        ({"device": "tpu"}, "device"),
        ({"profile": "cloud"}, "profile"),
        ({"sandbox": {"cpu_seconds": 0}}, "sandbox.cpu_seconds"),
        ({"tools": {"detector": {"backend": "owlvit", "modle": "x"}}}, "tools.detector.modle"),
    ],
)
def test_bad_values_name_the_key(overrides: dict, bad_key: str) -> None:
    with pytest.raises(ConfigError, match=rf"(?m)^  {bad_key}:"):
        load_settings(**overrides)


def test_missing_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("profile = [unclosed")
    with pytest.raises(ConfigError):
        load_settings(broken)
