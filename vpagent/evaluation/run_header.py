"""The header of an eval or traces results file, from a dataset's items and the settings."""

from __future__ import annotations

import json
from collections.abc import Sequence

from vpagent.config import Settings
from vpagent.evaluation.datasets import EvalItem
from vpagent.pool.header import RunHeader, answer_settings, dataset_identity, runtime_settings


def run_header(
    kind: str,
    items: Sequence[EvalItem],
    *,
    dataset: str = "",
    layout: str = "",
    settings: Settings | None = None,
) -> RunHeader:
    """A header for a run over ``items`` (pass the whole dataset, not a ``--limit`` prefix,
    so that a longer run can resume a shorter one)."""
    rows = (json.dumps([i.id, i.question, i.answers, i.choices]) for i in items)
    return RunHeader(
        kind=kind,
        dataset=dataset_identity(dataset, layout, rows),
        settings=answer_settings(settings) if settings is not None else {},
        runtime=runtime_settings(settings) if settings is not None else {},
    )
