"""`vpagent distill traces | rationales | augment | export | examples | calibrate-counts`: labels to
training data, and the detector's counting calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vpagent.cli.common import (
    EXIT_INTERRUPTED,
    ConfigOption,
    RayAddressOption,
    console,
    fail,
    settings_or_fail,
)
from vpagent.config import Settings


def teacher_config(settings: Settings) -> dict[str, Any]:
    """What identifies the teacher in the traces' run header and the data card."""
    llm = settings.llm
    return {
        "provider": llm.provider,
        "planner": llm.model or llm.resolved_model(),
        "temperature": llm.temperature,
        "max_repairs": settings.agent.max_repairs,
        "tools_profile": settings.profile,
    }


def traces_command(
    dataset: Annotated[Path, typer.Argument(help="Labelled items: a JSONL file or a folder.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for items.jsonl.")],
    k: Annotated[int, typer.Option("--k", min=1, help="Programs per item at most.")] = 5,
    workers: Annotated[int, typer.Option(min=0, help="Worker processes (0: in this process).")] = 1,
    use_ray: Annotated[bool, typer.Option("--ray", help="Run the workers as Ray actors.")] = False,
    ray_address: RayAddressOption = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N items.")] = None,
    retry_errors: Annotated[
        bool, typer.Option(help="Trace again items rejected with worker_error (e.g. timeouts).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Plan and run up to K programs per item; keep the first that matches the label.

    Resumable: a rerun skips finished items; Ctrl-C or a crash loses only items in flight.
    """
    from vpagent.distill.traces import TraceRunError, generate_traces
    from vpagent.evaluation.datasets import DatasetError, read_dataset
    from vpagent.evaluation.run_header import run_header
    from vpagent.pool.dataset_run import Backend
    from vpagent.pool.factory import SettingsAgentFactory
    from vpagent.pool.local import AgentBuildFailed

    settings = settings_or_fail(config)
    try:
        loaded = read_dataset(dataset)
    except (DatasetError, OSError) as error:
        raise fail(str(error)) from None
    header = run_header(
        "traces", loaded.items, dataset=str(dataset), layout=loaded.layout, settings=settings
    )
    use_ray = use_ray or ray_address is not None
    try:
        summary = generate_traces(
            loaded.items[:limit],
            out,
            SettingsAgentFactory(settings, workers=workers),
            k=k,
            backend=Backend(workers, use_ray, ray_address or settings.ray.address),
            concurrency=settings.llm.parallel,
            teacher=teacher_config(settings),
            header=header,
            retry_errors=retry_errors,
        )
    except KeyboardInterrupt:
        console.print("interrupted: finished items are saved; rerun the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except (TraceRunError, AgentBuildFailed, RuntimeError, OSError) as error:
        raise fail(str(error)) from None
    table = Table(title=f"{out}: {summary.finished} of {summary.total} items traced")
    table.add_column("outcome")
    table.add_column("items")
    table.add_row("verified", str(summary.verified))
    for reason, n in summary.reasons.most_common():
        table.add_row(f"rejected: {reason}", str(n))
    console.print(table)
    console.print(
        f"coverage {summary.coverage:.1%}; this run traced {summary.traced}, "
        f"{summary.skipped} were already done",
        highlight=False,
    )


def rationales_command(
    traces: Annotated[Path, typer.Argument(help="A folder written by `distill traces`.")],
    rewrite: Annotated[
        bool, typer.Option("--rewrite", help="Let the chat model reword each rationale.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Write a rationale per verified item to DIR/rationales.jsonl (template, or reworded)."""
    from vpagent.distill.rationales import write_rationales
    from vpagent.pool.jsonl import CorruptFile

    complete = None
    if rewrite:
        from vpagent.llm.chat import build_chat_model
        from vpagent.llm.chat import complete as ask

        try:
            chat = build_chat_model(settings_or_fail(config).llm)
        except Exception as error:  # missing model pack, bad LLM config
            raise fail(f"cannot start the chat model: {error}") from None

        def complete(prompt: str) -> str:
            return ask(chat, prompt)

    if not (traces / "items.jsonl").is_file():
        raise fail(f"{traces} holds no items.jsonl (run `vpagent distill traces`)")
    try:
        counts = write_rationales(traces, complete)
    except CorruptFile as error:
        raise fail(str(error)) from None
    written = ", ".join(f"{kind}: {n}" for kind, n in counts.items()) or "none (all done)"
    console.print(f"rationales written: {written}", highlight=False)


def export_command(
    traces: Annotated[Path, typer.Argument(help="A folder written by `distill traces`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Export folder.")],
    val_fraction: Annotated[float, typer.Option(help="Share of images for validation.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split by image.")] = 0,
    labels: Annotated[
        list[Path] | None,
        typer.Option(
            "--labels",
            help="Dataset whose items without a verified program add answer-only records "
            "from their labels (VPD's mix; usually the dataset the traces were made from, "
            "and `distill augment` output). Repeatable; enough without traces.",
        ),
    ] = None,
) -> None:
    """SFT records (rationale + answer tasks) as JSONL and parquet, split by photo, with a card."""
    from vpagent.distill.export import ExportError, export_dataset
    from vpagent.evaluation.datasets import DatasetError
    from vpagent.pool.jsonl import CorruptFile

    try:
        summary = export_dataset(traces, out, val_fraction=val_fraction, seed=seed, labels=labels)
    except (ExportError, CorruptFile, DatasetError, OSError) as error:
        raise fail(str(error)) from None
    card = summary.card
    title = f"coverage {card['coverage']:.1%} of {card['items']} items"
    if card["traces"] is None:
        title = "no traces: answer-only records from labels"
    table = Table(title=f"{out}: {title}")
    for column in ("split", "images", "records", "from labels"):
        table.add_column(column)
    for name, split in card["splits"].items():
        from_labels = str(split["records_per_origin"].get("label", 0))
        table.add_row(name, str(split["images"]), str(split["records"]), from_labels)
    console.print(table)
    for name, split in card["splits"].items():
        if not split["records"]:
            console.print(f"note: the {name} split is empty (no parquet file written)")
    if card["augmented_dropped_validation"]:
        dropped = card["augmented_dropped_validation"]
        console.print(f"left out: {dropped} augmented items of validation photos", highlight=False)
    console.print(f"data card: {out / 'README.md'}", highlight=False)


def augment_command(
    annotations: Annotated[Path, typer.Argument(help="COCO-format instance annotation JSON.")],
    questions: Annotated[
        Path, typer.Option(help="The photos' questions (`distill questions` output) to flip.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for images/, questions.jsonl.")],
    crops: Annotated[int, typer.Option(min=0, help="Random crops per photo.")] = 2,
    flip: Annotated[
        bool, typer.Option(help="Mirror each photo, its questions' sides swapped.")
    ] = True,
    min_visible: Annotated[
        float, typer.Option(help="Share of a box a crop must keep for the object to count.")
    ] = 0.7,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same seed writes the same files.")
    ] = 0,
    per_image: Annotated[int, typer.Option(min=1, help="At most N new questions per picture.")] = 8,
    images: Annotated[
        Path | None,
        typer.Option(help="Images folder (default: images/ next to the file, or its folder)."),
    ] = None,
) -> None:
    """Flipped and cropped photos with labels recomputed from the annotations, and the extra
    question families on the photos themselves."""
    from vpagent.distill.augment import QUESTIONS_FILE, SOURCES, augment
    from vpagent.distill.coco import CocoError
    from vpagent.distill.questions import QuestionError, write_jsonl
    from vpagent.evaluation.datasets import DatasetError

    try:
        rows, report = augment(
            annotations, questions, out, images=images, crops=crops, flip=flip,
            min_visible=min_visible, seed=seed, per_image=per_image,
        )  # fmt: skip
        write_jsonl(rows, out / QUESTIONS_FILE)
    except (CocoError, QuestionError, DatasetError, OSError) as error:
        raise fail(str(error)) from None
    table = Table(title=f"{out / QUESTIONS_FILE}: {report.questions} questions")
    for column in ("type", *SOURCES, "all"):
        table.add_column(column)
    types = sorted({kind for counts in report.per_source.values() for kind in counts})
    for kind in types:
        counts = [report.per_source[source].get(kind, 0) for source in SOURCES]
        table.add_row(kind, *(str(n) for n in counts), str(sum(counts)))
    console.print(table)
    pictures = ", ".join(f"{kind} {n}" for kind, n in report.images.items()) or "none"
    console.print(f"{report.photos} photos; pictures written: {pictures}", highlight=False)
    if report.skipped:
        left_out = ", ".join(f"{reason}: {n}" for reason, n in report.skipped.items())
        console.print(f"left out: {left_out}", highlight=False, markup=False)


def examples_command(
    traces: Annotated[Path, typer.Argument(help="A folder written by `distill traces`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Example bank TOML to write.")],
    exclude_images: Annotated[
        list[Path] | None,
        typer.Option("--exclude-images", help="Eval dataset whose images to leave out."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Verified programs -> planner example bank, deduplicated and re-checked in the sandbox."""
    from vpagent.distill.example_bank import build_bank, write_bank
    from vpagent.evaluation.datasets import DatasetError
    from vpagent.pool.factory import SettingsAgentFactory
    from vpagent.pool.jsonl import CorruptFile
    from vpagent.pool.local import AgentBuildFailed

    settings = settings_or_fail(config)
    if not (traces / "items.jsonl").is_file():
        raise fail(f"{traces} holds no items.jsonl (run `vpagent distill traces`)")
    try:
        factory = SettingsAgentFactory(settings, plans=False)
        summary = build_bank(traces, factory, exclude=exclude_images or [])
        write_bank(summary.kept, out, origin=str(traces))
    except (DatasetError, CorruptFile, AgentBuildFailed, OSError) as error:
        raise fail(str(error)) from None
    dropped = ", ".join(f"{reason}: {n}" for reason, n in summary.dropped.items()) or "none"
    console.print(f"{out}: {len(summary.kept)} examples; left out: {dropped}", highlight=False)


def calibrate_counts_command(
    data: Annotated[Path, typer.Argument(help="COCO folder: images/ and instances.json.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Calibration JSON (default: the one the detector reads)."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option(help="Share of photos held out, as `distill export` splits.")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the split by photo.")] = 0,
) -> None:
    """Choose the offline detector's tiles, NMS and score thresholds by exact count accuracy on
    the training photos (the validation photos are never used)."""
    from vpagent.distill.coco import CocoError
    from vpagent.distill.count_calibration import run
    from vpagent.tools.offline.detector import CALIBRATION_FILE

    target = out or CALIBRATION_FILE
    try:
        record = run(data, target, val_fraction, seed, progress=console.print)
    except (CocoError, OSError) as error:
        raise fail(str(error)) from None
    train = record["train"]
    console.print(
        f"{target}: tiles {record['tiles']}, flip {record['flip']}, NMS IoU {record['nms_iou']}, "
        f"score >= {record['score_threshold']}, per class {record['class_thresholds']}; "
        f"training photos {record['split']['train_photos']}: {train['correct']}/{train['n']} "
        f"counts exact, MAE {train['mae']:.2f}; absent categories counted 0: "
        f"{record['train_absent']['correct']}/{record['train_absent']['n']}",
        highlight=False,
        markup=False,
    )


COMMANDS = {
    "calibrate-counts": calibrate_counts_command,
    "traces": traces_command,
    "rationales": rationales_command,
    "augment": augment_command,
    "export": export_command,
    "examples": examples_command,
}
