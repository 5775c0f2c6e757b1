"""Generating a questions file: pictures checked, questions picked per picture, answers
balanced, JSONL written.

:func:`generate` picks, per image, up to ``per_image`` questions round-robin over the families
with a seeded random generator, so the same seed gives a byte-identical file.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from vpagent.distill.coco import CocoDataset, CocoImage, load_coco
from vpagent.distill.questions.families import FAMILIES, FAMILY_FUNCTIONS, resolve_types
from vpagent.distill.questions.rules import Question, QuestionError, Rules, build_scene


def pick(
    groups_by_family: dict[str, list[list[Question]]], limit: int, rng: random.Random
) -> list[Question]:
    """Up to ``limit`` questions, round-robin over the families, each family shuffled.

    No family takes more than half of an image's questions (else yes/no existence pairs, which
    every picture offers, would crowd out the rarer families).
    """
    share = max(1, limit // 2)
    taken: Counter[str] = Counter()
    queues = {}
    for family, groups in groups_by_family.items():
        shuffled = list(groups)
        rng.shuffle(shuffled)
        queues[family] = shuffled
    chosen: list[Question] = []
    texts: set[str] = set()
    while any(queues.values()):
        for family in list(queues):
            if not queues[family]:
                continue
            group = queues[family].pop(0)
            if (
                len(chosen) + len(group) > limit
                or taken[family] + len(group) > share
                or any(q.question in texts for q in group)
            ):
                continue
            taken[family] += len(group)
            chosen.extend(group)
            texts.update(q.question for q in group)
    return chosen


class Report(BaseModel):
    """What a generation run produced and what it left out, by reason."""

    images: int = 0
    images_used: int = 0
    questions: int = 0
    per_type: dict[str, int] = Field(default_factory=dict)
    answers: dict[str, dict[str, int]] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)


def check_image(path: Path, image: CocoImage) -> str | None:
    """None if the file is a readable picture of the annotated size, else the skip reason."""
    if not path.is_file():
        return "image missing"
    try:
        with Image.open(path) as opened:
            size = opened.size
    except (UnidentifiedImageError, OSError):
        return "image unreadable"
    if size != (image.width, image.height):
        return "image size differs from the annotations"
    return None


def find_images_dir(dataset: CocoDataset, images: Path | None) -> Path:
    """``images`` if given, else ``images/`` next to the annotation file, else its folder."""
    candidates = [images] if images else [dataset.path.parent / "images", dataset.path.parent]
    for folder in candidates:
        if any((folder / image.file_name).is_file() for image in dataset.images):
            return folder
    where = " or ".join(str(folder) for folder in candidates)
    raise QuestionError(
        f"none of the {len(dataset.images)} images of {dataset.path} is under {where}; "
        "pass --images DIR"
    )


def image_reference(path: Path, out: Path) -> str:
    """``path`` relative to the folder of ``out`` (absolute where no relative path exists)."""
    try:
        return Path(os.path.relpath(path.resolve(), out.resolve().parent)).as_posix()
    except ValueError:  # another drive (Windows)
        return path.resolve().as_posix()


def generate(
    annotations: Path,
    out: Path,
    *,
    images: Path | None = None,
    seed: int = 0,
    per_image: int = 8,
    types: Iterable[str] = FAMILIES,
    rules: Rules | None = None,
) -> tuple[list[dict[str, object]], Report]:
    """Questions for every usable image of ``annotations``, as rows of ``vpagent eval`` JSONL."""
    families = resolve_types(types)
    if per_image < 1:
        raise QuestionError("--per-image must be at least 1")
    rules = rules or Rules()
    dataset = load_coco(annotations)
    folder = find_images_dir(dataset, images)
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    skipped: Counter[str] = Counter()
    used = 0
    for image in dataset.images:
        path = folder / image.file_name
        reason = check_image(path, image)
        if reason:
            skipped[reason] += 1
            continue
        scene = build_scene(dataset, image, rules)
        groups = {family: FAMILY_FUNCTIONS[family](scene, rng) for family in families}
        chosen = pick(groups, per_image, rng)
        if not chosen:
            skipped["no unambiguous question"] += 1
            continue
        used += 1
        rows.extend(question_rows(dataset, image, path, out, chosen))
    rows, dropped = balance(rows, rules.max_answer_share, rng)
    if dropped:
        skipped["answer too frequent for its type"] = dropped
    return rows, _report(len(dataset.images), used, rows, skipped)


def balance(
    rows: list[dict[str, object]], max_share: float, rng: random.Random
) -> tuple[list[dict[str, object]], int]:
    """Drop seeded-random rows of any answer above ``max_share`` of its type; keep the order."""
    drop: set[int] = set()
    for kind in sorted({str(row["type"]) for row in rows}):
        indices = [i for i, row in enumerate(rows) if row["type"] == kind]
        counts = Counter(str(rows[i]["answer"]) for i in indices)
        top, n_top = counts.most_common(1)[0]
        others = len(indices) - n_top
        allowed = n_top if max_share >= 1 else int(max_share / (1 - max_share) * others)
        if n_top > max(allowed, 1):
            tops = [i for i in indices if str(rows[i]["answer"]) == top]
            drop.update(rng.sample(tops, n_top - max(allowed, 1)))
    return [row for i, row in enumerate(rows) if i not in drop], len(drop)


def question_rows(
    dataset: CocoDataset,
    image: CocoImage,
    path: Path,
    out: Path,
    chosen: list[Question],
    *,
    prefix: str | None = None,
    extra: dict[str, object] | None = None,
) -> list[dict[str, object]]:
    """JSONL rows of ``chosen`` on the picture at ``path`` (of ``image``), relative to ``out``:
    ids ``<prefix>-NN`` (default: the file's stem), ``extra`` fields appended to each row."""
    licence = dataset.licenses.get(image.license) if image.license is not None else None
    prefix = prefix or Path(image.file_name).stem
    rows = []
    for number, question in enumerate(chosen, 1):
        row: dict[str, object] = {
            "id": f"{prefix}-{number:02d}",
            "image": image_reference(path, out),
            "question": question.question,
            "answer": question.answer,
            "type": question.type,
        }
        if question.accept:
            row["accept"] = question.accept
        if licence is not None:
            row["license"] = licence.name
            row["license_url"] = licence.url
        row["source"] = f"{dataset.description}, image {image.id}"
        rows.append(row | (extra or {}))
    return rows


def _report(images: int, used: int, rows: list[dict[str, object]], skipped: Counter[str]) -> Report:
    per_type = Counter(str(row["type"]) for row in rows)
    answers: dict[str, Counter[str]] = {}
    for row in rows:
        answers.setdefault(str(row["type"]), Counter())[str(row["answer"])] += 1
    return Report(
        images=images,
        images_used=used,
        questions=len(rows),
        per_type=dict(sorted(per_type.items())),
        answers={kind: dict(counts.most_common(5)) for kind, counts in sorted(answers.items())},
        skipped=dict(sorted(skipped.items())),
    )


def write_jsonl(rows: list[dict[str, object]], out: Path) -> None:
    """Write ``rows`` as JSON lines, atomically (a temporary file renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    temporary.replace(out)
