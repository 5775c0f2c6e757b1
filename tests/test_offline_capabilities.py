"""vpagent.tools.capabilities.describe: what the configured backends can do, for the planner."""

from __future__ import annotations

from vpagent.config import load_settings
from vpagent.tools.capabilities import describe
from vpagent.tools.offline.coco_names import COCO_CLASSES
from vpagent.tools.offline.colors import PALETTE


def test_the_offline_pack_lists_its_vocabulary_and_checks() -> None:
    text = describe(load_settings(profile="offline").tools)
    assert all(cls in text for cls in COCO_CLASSES) and "ONLY these 80 classes" in text
    assert "table->dining table" in text and "find('face')" in text
    assert "tree" in text and "cannot be found" in text
    assert all(color in text for color in PALETTE) and "sunglasses" in text
    assert "level ground" in text and "not from the pixels" in text
    assert len(text) < 2000  # it goes into every prompt


def test_real_models_are_described_as_open() -> None:
    text = describe(load_settings(profile="hf").tools)
    assert "open vocabulary" in text and "COCO" not in text and "level ground" not in text


def test_the_description_follows_the_configured_backend() -> None:
    settings = load_settings(profile="offline", tools={"detector": {"backend": "yolo"}})
    text = describe(settings.tools)
    assert "yolo detector's own classes" in text and "ONLY these" not in text
