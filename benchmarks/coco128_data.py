"""Where the coco128 benchmarks find their photos: ``--data``, checked before any work."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco128"


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """``--data DIR``: the coco128 folder (images/ and instances.json)."""
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)


def checked_data(data: Path) -> Path:
    """``data``, or exit with a clear message when it has no images/ folder."""
    if not (data / "images").is_dir():
        sys.exit(f"no images/ in {data}; pass --data")
    return data
