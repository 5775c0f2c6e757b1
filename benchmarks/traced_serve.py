"""`vpagent` with Python's allocation tracer on: each SIGUSR1 writes a tracemalloc snapshot.

Run: python benchmarks/traced_serve.py SNAPSHOT_DIR serve --port 8000 [vpagent options]

The snapshots (``SNAPSHOT_DIR/snapshot-1.tm``, ``-2``, ...) hold every live Python allocation
with the ``FRAMES`` innermost frames that made it; `benchmarks/bench_heap.py` compares them.
A file appears whole (written aside, then renamed), so a reader never sees half of one.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import tracemalloc
from pathlib import Path
from types import FrameType

FRAMES = 12


def main() -> None:
    folder = Path(sys.argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    numbers = itertools.count(1)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        path = folder / f"snapshot-{next(numbers)}.tm"
        tracemalloc.take_snapshot().dump(str(path) + ".part")
        os.replace(str(path) + ".part", path)

    tracemalloc.start(FRAMES)
    signal.signal(signal.SIGUSR1, dump)
    from vpagent.cli import app

    sys.argv = ["vpagent", *sys.argv[2:]]
    app()


if __name__ == "__main__":
    main()
