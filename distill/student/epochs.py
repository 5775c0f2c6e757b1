"""Per-epoch bookkeeping of a training run: train and validation loss, seconds, tokens per second.

:class:`EpochLog` is a Trainer callback: it times each epoch (evaluation excluded), counts the
tokens the collator hands the model (padding excluded), averages the step losses of the epoch
and records the validation loss the Trainer computes at the epoch's end. :func:`write_curve`
writes the curve as JSON and a PNG beside the student.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

CURVE_FILE = "loss_curve.json"
CURVE_PLOT = "loss_curve.png"


class EpochMetrics(BaseModel):
    """One epoch: mean train loss of its steps, validation loss at its end, its cost."""

    epoch: int
    steps: int
    train_loss: float | None
    validation_loss: float | None = None
    seconds: float
    tokens: int
    tokens_per_second: float


class TokenCounter:
    """Wraps a collator and counts the real (unpadded) tokens of every batch it builds."""

    def __init__(self, collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]) -> None:
        self.collate = collate
        self.tokens = 0

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = self.collate(examples)
        self.tokens += int(batch["attention_mask"].sum())
        return batch


def epoch_log(counter: TokenCounter) -> Any:
    """A Trainer callback filling ``.epochs`` with :class:`EpochMetrics` (built lazily: the
    callback class needs transformers)."""
    from transformers import TrainerCallback

    class EpochLog(TrainerCallback):
        def __init__(self) -> None:
            self.epochs: list[EpochMetrics] = []
            self._start = 0.0
            self._tokens = 0
            self._first_step = 0
            self._losses: list[float] = []

        def on_epoch_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self._start = time.perf_counter()
            self._tokens = counter.tokens
            self._first_step = state.global_step
            self._losses = []

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if logs and "loss" in logs:
                self._losses.append(float(logs["loss"]))
            if logs and "eval_loss" in logs and self.epochs:
                self.epochs[-1].validation_loss = float(logs["eval_loss"])

        def on_epoch_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            seconds = time.perf_counter() - self._start
            tokens = counter.tokens - self._tokens
            self.epochs.append(
                EpochMetrics(
                    epoch=round(state.epoch or len(self.epochs) + 1),
                    steps=state.global_step - self._first_step,
                    train_loss=statistics.fmean(self._losses) if self._losses else None,
                    seconds=seconds,
                    tokens=tokens,
                    tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
                )
            )

    return EpochLog()


def best_epoch(epochs: list[EpochMetrics]) -> EpochMetrics | None:
    """The epoch with the lowest validation loss (the first of equals); None without one."""
    validated = [e for e in epochs if e.validation_loss is not None]
    return min(validated, key=lambda e: (e.validation_loss, e.epoch)) if validated else None


def write_curve(epochs: list[EpochMetrics], out: Path, title: str = "") -> dict[str, Path]:
    """``loss_curve.json`` and ``loss_curve.png`` (train and validation loss per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {"json": out / CURVE_FILE, "plot": out / CURVE_PLOT}
    best = best_epoch(epochs)
    paths["json"].write_text(
        json.dumps(
            {
                "epochs": [e.model_dump() for e in epochs],
                "best_epoch": best.epoch if best else None,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    figure, axes = plt.subplots(figsize=(6, 4))
    xs = [e.epoch for e in epochs]
    axes.plot(xs, [e.train_loss for e in epochs], "o-", label="train (mean of the epoch's steps)")
    validated = [e for e in epochs if e.validation_loss is not None]
    if validated:
        axes.plot(
            [e.epoch for e in validated],
            [e.validation_loss for e in validated],
            "s-",
            label="validation (end of epoch)",
        )
    if best is not None:
        axes.axvline(best.epoch, color="grey", linestyle=":", label=f"best: epoch {best.epoch}")
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.set_title(title or "student training")
    axes.legend()
    figure.tight_layout()
    figure.savefig(paths["plot"], dpi=100)
    plt.close(figure)
    return paths
