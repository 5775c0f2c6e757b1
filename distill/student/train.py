"""Fine-tune a student on exported SFT records with transformers' Trainer (+ PEFT LoRA).

``OUT/checkpoints/checkpoint-N`` are the Trainer's checkpoints; each gets a ``.complete`` marker
once the Trainer has written all of it, so a run killed mid-save never resumes from a torn
checkpoint (unmarked ones are deleted on ``--resume``). ``OUT/run.json`` pins the student a run
started from: resuming with another architecture is refused. The finished student (LoRA merged)
is written to a staging folder and moved into ``OUT`` file by file, ``vpagent_student.json``
last: a folder without it is not a finished student.

Budgets are epochs (``--epochs``; ``--max-steps`` overrides). ``--held-out-records N`` holds
whole training photos out of training (at least N records) and computes their loss at every
epoch's end; ``--patience N`` stops once it has not improved for N epochs and the finished
student is the best epoch's checkpoint (checkpoints are then written per epoch). The export's
validation split is never read in training: it is what `distill eval` scores, so choosing the
epoch on it would report a score the student was selected on. ``OUT/loss_curve.json`` and
``.png`` hold the train and held-out ("validation") loss, seconds and tokens per second of every
epoch. Cheap epochs on a small CPU: ``--max-records`` (a seeded subset), ``--lora-layers``
(LoRA on the top layers only: with the scene eyes nothing below them needs a gradient),
``--threads``; image features and scene text are cached on disk.

Several processes: the Trainer runs under ``accelerate launch`` or ``torchrun`` unchanged, e.g.
``torchrun --nproc_per_node 2 -m vpagent distill train --data EXPORT --out CKPT`` (one process
per GPU; on CPU they talk over gloo). Each process trains on its share of every batch; only the
first writes the student, its markers and the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vpagent.distill.student.data import (
    TASKS,
    SFTDataset,
    describe,
    hold_out_photos,
    load_split,
    subset,
)
from vpagent.distill.student.epochs import (
    EpochMetrics,
    TokenCounter,
    best_epoch,
    epoch_log,
    write_curve,
)
from vpagent.student.base import StudentError
from vpagent.student.records import SFTRecord
from vpagent.student.students import STUDENT_FILE, HFStudent, Student, new_student

CHECKPOINTS = "checkpoints"
RUN_FILE = "run.json"
METRICS_FILE = "train_metrics.json"
COMPLETE = ".complete"
# the options that choose the records a run trains and stops on: a resumed run keeps them
DATA_OPTIONS = ("data", "tasks", "max_records", "held_out_records")


class TrainOptions(BaseModel):
    """What ``vpagent distill train`` takes."""

    model_config = ConfigDict(extra="forbid")

    data: Path
    out: Path
    student: str | None = None  # None: the embedded student
    # vpagent.student.eyes.EYES; None: grid for a new student, a saved student's own otherwise
    eyes: Literal["grid", "grid+regions", "stages", "grid+ssd", "scene", "grid+scene"] | None = None
    max_steps: int | None = Field(None, ge=1)
    epochs: float = Field(3.0, gt=0)
    patience: int | None = Field(None, ge=1)  # epochs without a better held-out loss
    max_records: int | None = Field(None, ge=1)  # a seeded subset of the training records
    held_out_records: int | None = Field(None, ge=1)  # early stopping's photos, from training
    lora_layers: int | None = Field(None, ge=1)  # LoRA on the top N layers only
    threads: int | None = Field(None, ge=1)  # torch's intra-op threads
    scene_text: bool = False  # an image-text-to-text student also reads the scene text
    lr: float = Field(2e-4, gt=0)
    batch_size: int = Field(4, ge=1)
    grad_accum: int = Field(1, ge=1)
    lora: bool = True
    lora_rank: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    save_steps: int = Field(50, ge=1)
    save_total_limit: int = Field(2, ge=1)
    tasks: list[str] = Field(default_factory=lambda: list(TASKS))
    resume: bool = False
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda


class TrainResult(BaseModel):
    out: Path
    steps: int
    resumed_from: int | None
    train_loss: float | None
    losses: list[tuple[int, float]]
    samples_per_second: float
    seconds: float
    processes: int = Field(1, description="Training processes (torchrun / accelerate world size).")
    data: dict[str, Any]
    validation_data: dict[str, Any] | None = None
    epochs: list[EpochMetrics] = Field(default_factory=list)
    best_epoch: int | None = None
    best_validation_loss: float | None = None
    stopped_early: bool = False
    seconds_per_epoch: float | None = None
    tokens_per_second: float | None = None


def _run_identity(options: TrainOptions, student: Student) -> dict[str, Any]:
    return {
        "student": options.student or "embedded",
        "kind": student.kind,
        "model_type": student.model_type,
        "eyes": student.eyes,
        "lora": options.lora,
    }


def check_out_dir(options: TrainOptions) -> None:
    out = options.out
    if out.exists() and not out.is_dir():
        raise StudentError(f"--out {out} is a file, not a folder")
    if (out / STUDENT_FILE).is_file() and not options.resume:
        raise StudentError(f"{out} already holds a trained student; choose another --out")
    if (out / CHECKPOINTS).is_dir() and not options.resume and any((out / CHECKPOINTS).iterdir()):
        raise StudentError(
            f"{out} holds checkpoints of an earlier run: add --resume to continue it, or "
            "choose another --out"
        )


def _check_resume(options: TrainOptions, identity: dict[str, Any]) -> None:
    path = options.out / RUN_FILE
    if not path.is_file():
        return
    earlier = json.loads(path.read_text(encoding="utf-8"))
    if "eyes" not in earlier:  # runs from before --eyes: the embedded student saw the grid
        earlier["eyes"] = "grid" if earlier.get("kind") == "embedded" else None
    for key in ("student", "model_type", "eyes", "lora", "kind"):
        if earlier.get(key) != identity[key]:
            raise StudentError(
                f"{options.out} holds a run of another student ({key}: {earlier.get(key)!r}, "
                f"now {identity[key]!r}); resume it with the same --student, --eyes and "
                "--lora/--full, or choose another --out"
            )
    before = earlier.get("options")
    if before is None:  # runs from before run.json kept the options: nothing to compare
        return
    now = options.model_dump(mode="json")
    for key in DATA_OPTIONS:
        if before.get(key) != now[key]:
            raise StudentError(
                f"{options.out} holds a run on other records ({key}: {before.get(key)!r}, now "
                f"{now[key]!r}): its checkpoints and best epoch belong to those; resume with "
                "the same options, or choose another --out"
            )


def last_complete_checkpoint(folder: Path, *, prune: bool = False) -> Path | None:
    """The newest checkpoint with its ``.complete`` marker; ``prune`` deletes torn ones."""
    if not folder.is_dir():
        return None
    found: list[tuple[int, Path]] = []
    for path in folder.glob("checkpoint-*"):
        step = path.name.removeprefix("checkpoint-")
        if not (path.is_dir() and step.isdigit()):
            continue
        if (path / COMPLETE).is_file():
            found.append((int(step), path))
        elif prune:
            shutil.rmtree(path)
    return max(found)[1] if found else None


def _wrap_lora(student: Student, options: TrainOptions) -> Any:
    from peft import LoraConfig, get_peft_model

    layers: dict[str, Any] = {}
    if options.lora_layers is not None:
        total = int(student.model.config.get_text_config().num_hidden_layers)
        layers["layers_to_transform"] = list(range(max(0, total - options.lora_layers), total))
    config = LoraConfig(
        **layers,
        r=options.lora_rank,
        lora_alpha=options.lora_alpha,
        lora_dropout=0.05,
        target_modules=student.lora_targets,
        modules_to_save=student.modules_to_save or None,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(student.model, config)


def _training_arguments(options: TrainOptions, validate: bool) -> Any:
    import torch
    from transformers import TrainingArguments

    cuda = options.device.startswith("cuda") or (
        options.device == "auto" and torch.cuda.is_available()
    )
    bf16 = cuda and torch.cuda.is_bf16_supported()
    return TrainingArguments(
        output_dir=str(options.out / CHECKPOINTS),
        max_steps=options.max_steps or -1,
        num_train_epochs=options.epochs,
        learning_rate=options.lr,
        per_device_train_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum,
        lr_scheduler_type="cosine",
        warmup_steps=0,
        logging_steps=1,
        save_strategy="epoch" if options.patience else "steps",
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        eval_strategy="epoch" if validate else "no",
        label_names=["labels"],  # not region_labels: an input of the model, not a target
        per_device_eval_batch_size=options.batch_size,
        load_best_model_at_end=bool(options.patience),
        metric_for_best_model="eval_loss" if options.patience else None,
        greater_is_better=False if options.patience else None,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        seed=options.seed,
        data_seed=options.seed,
    )


def _callbacks(progress: bool, losses: list[tuple[int, float]]) -> list:
    from transformers import TrainerCallback

    class Checkpointed(TrainerCallback):
        """Marks a checkpoint complete once the Trainer has written all of it."""

        def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                (folder / COMPLETE).write_text(str(state.global_step), encoding="utf-8")

    class LossLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    callbacks: list = [Checkpointed(), LossLog()]
    if progress:
        callbacks.append(rich_progress())
    return callbacks


def rich_progress() -> Any:
    """A rich progress bar over the optimisation steps, showing the latest loss."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from transformers import TrainerCallback

    class _Bar(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.task = None

        def on_train_begin(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if not state.is_world_process_zero:
                return
            self.progress = Progress(
                TextColumn("training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=state.max_steps, completed=state.global_step, loss="-"
            )

        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
            if self.progress is not None and logs and "loss" in logs:
                self.progress.update(self.task, loss=f"{logs['loss']:.4f}")
                if not self.progress.console.is_terminal:  # a log file: one line per step
                    self.progress.console.print(
                        f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}",
                        highlight=False,
                    )

        def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if self.progress is not None:
                self.progress.stop()

    return _Bar()


def save_student_atomically(student: Student, out: Path) -> None:
    """Save into a staging folder, then move each file into ``out``, the marker file last."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=".final-"))
    try:
        student.save(staging)
        files = sorted(p for p in staging.iterdir() if p.is_file())
        for path in [p for p in files if p.name != STUDENT_FILE]:
            os.replace(path, out / path.name)
        os.replace(staging / STUDENT_FILE, out / STUDENT_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def train(
    options: TrainOptions,
    *,
    progress: bool = True,
    student: Student | None = None,
    callbacks: list[Any] | None = None,
) -> TrainResult:
    """Train, checkpoint, merge LoRA and save the student into ``options.out``."""
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer, set_seed

    check_out_dir(options)
    records, root = load_split(options.data, "train", options.tasks)
    records, validation = _held_out_split(records, options)
    records = subset(records, options.max_records)
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)
    set_seed(options.seed)
    student = student or new_student(options.student, options.eyes)
    if options.scene_text:
        if not isinstance(student, HFStudent):
            raise StudentError(
                "--scene-text is for image-text-to-text students; the embedded student reads "
                "the scene text with --eyes scene or --eyes grid+scene"
            )
        student.read_scene_text()
    identity = _run_identity(options, student)
    if options.resume:
        _check_resume(options, identity)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / RUN_FILE).write_text(
        json.dumps({**identity, "options": options.model_dump(mode="json")}, indent=2),
        encoding="utf-8",
    )
    model = _wrap_lora(student, options) if options.lora else student.model
    losses: list[tuple[int, float]] = []
    counter = TokenCounter(student.collate)
    epochs = epoch_log(counter)
    stopping = [EarlyStoppingCallback(options.patience)] if options.patience else []
    trainer = Trainer(
        model=model,
        args=_training_arguments(options, validate=bool(validation)),
        train_dataset=SFTDataset(records, root, student),
        eval_dataset=SFTDataset(validation, root, student) if validation else None,
        data_collator=counter,
        callbacks=[*_callbacks(progress, losses), epochs, *stopping, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)  # the rich bar shows the loss instead
    with trainer.args.main_process_first(desc="finding the checkpoint to resume from"):
        checkpoint = last_complete_checkpoint(
            options.out / CHECKPOINTS, prune=trainer.is_world_process_zero()
        )
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started
    if options.lora:
        student.model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        save_student_atomically(student, options.out)
    resumed_from = int(checkpoint.name.removeprefix("checkpoint-")) if checkpoint else None
    best = best_epoch(epochs.epochs)
    timed = [e for e in epochs.epochs if e.steps]
    result = TrainResult(
        out=options.out,
        steps=trainer.state.global_step,
        resumed_from=resumed_from,
        train_loss=output.training_loss,
        losses=losses,
        samples_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
        seconds=seconds,
        processes=trainer.args.world_size,
        data=describe(records),
        validation_data=describe(validation) if validation else None,
        epochs=epochs.epochs,
        best_epoch=best.epoch if best else None,
        best_validation_loss=best.validation_loss if best else None,
        stopped_early=bool(options.patience)
        and trainer.state.global_step < trainer.state.max_steps,
        seconds_per_epoch=_mean([e.seconds for e in timed]),
        tokens_per_second=_mean([e.tokens_per_second for e in timed]),
    )
    if trainer.is_world_process_zero():
        (options.out / METRICS_FILE).write_text(result.model_dump_json(indent=2), encoding="utf-8")
        if epochs.epochs:
            write_curve(epochs.epochs, options.out, title=f"{options.out.name}: loss per epoch")
    return result


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _held_out_split(
    records: list[SFTRecord], options: TrainOptions
) -> tuple[list[SFTRecord], list[SFTRecord]]:
    """``(training, held_out)`` records: whole training photos held out for the per-epoch loss
    (``--held-out-records``), or none; early stopping needs them."""
    if options.held_out_records is None:
        if options.patience:
            raise StudentError(
                "--patience stops on the loss of training photos held out of training: "
                "give --held-out-records N as well"
            )
        return records, []
    return hold_out_photos(records, options.held_out_records)
