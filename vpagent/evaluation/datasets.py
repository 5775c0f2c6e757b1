"""Evaluation items from JSONL files, GQA, VQAv2 / OK-VQA, and BLINK-style folders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError


class EvalItem(BaseModel):
    """One question: its image, the accepted answers, and (multiple choice) the choices."""

    id: str
    image: Path
    question: str
    answers: list[str] = Field(min_length=1)
    choices: list[str] | None = None
    type: str = "all"
    soft: bool = False  # score with VQA soft accuracy (answers are the 10 human answers)


class DatasetError(ValueError):
    """The dataset cannot be read; the message names the file and line."""


def load_jsonl(path: Path) -> Iterator[EvalItem]:
    """JSON lines: id, image (relative to the file), question, answer, [accept, type, choices]."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                answers = [row["answer"], *row.get("accept", [])]
                yield EvalItem(
                    id=str(row.get("id", number)),
                    image=path.parent / row["image"],
                    question=row["question"],
                    answers=[str(a) for a in answers],
                    choices=row.get("choices"),
                    type=row.get("type", "all"),
                )
            except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as error:
                raise DatasetError(f"{path}:{number}: {error!r}") from None


def load_gqa(questions: Path, images: Path) -> Iterator[EvalItem]:
    """GQA's `{qid: {imageId, question, answer, types}}` file and its images folder."""
    data = json.loads(questions.read_text(encoding="utf-8"))
    for qid, row in data.items():
        yield EvalItem(
            id=str(qid),
            image=images / f"{row['imageId']}.jpg",
            question=row["question"],
            answers=[row["answer"]],
            type=row.get("types", {}).get("structural", "all"),
        )


def load_vqa(questions: Path, annotations: Path, images: Path) -> Iterator[EvalItem]:
    """VQAv2 / OK-VQA question and annotation files; images named by COCO id."""
    asked = json.loads(questions.read_text(encoding="utf-8"))["questions"]
    by_id = {a["question_id"]: a for a in json.loads(annotations.read_text())["annotations"]}
    files = {
        int(p.stem.rsplit("_", 1)[-1]): p for p in images.glob("*.jpg") if p.stem[-1].isdigit()
    }
    for row in asked:
        note = by_id[row["question_id"]]
        yield EvalItem(
            id=str(row["question_id"]),
            image=files.get(row["image_id"], images / f"{row['image_id']}.jpg"),
            question=row["question"],
            answers=[a["answer"] for a in note["answers"]],
            type=note.get("answer_type", "all"),
            soft=True,
        )


def load_blink(folder: Path) -> Iterator[EvalItem]:
    """Folders holding `request.json` ({question, choices, answer, image, [type]}) and the image.

    ``answer`` is the correct choice's text or its letter ("(B)" or "B").
    """
    for request in sorted(folder.glob("*/request.json")):
        row = json.loads(request.read_text(encoding="utf-8"))
        choices = [str(c) for c in row["choices"]]
        answer = str(row["answer"]).strip()
        letter = answer.strip("()").upper()
        if len(letter) == 1 and "A" <= letter < chr(ord("A") + len(choices)):
            answer = choices[ord(letter) - ord("A")]
        yield EvalItem(
            id=request.parent.name,
            image=request.parent / row.get("image", "image.jpg"),
            question=row["question"],
            answers=[answer],
            choices=choices,
            type=row.get("type", "all"),
        )


def load_dataset(path: Path) -> list[EvalItem]:
    """A JSONL file, or a BLINK-style folder (GQA/VQA need two paths: use their loaders)."""
    if path.is_dir():
        items = list(load_blink(path))
        if not items:
            raise DatasetError(f"{path} holds no */request.json")
        return items
    if not path.is_file():
        raise DatasetError(f"no dataset at {path}")
    return list(load_jsonl(path))
