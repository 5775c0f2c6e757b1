"""The evaluation item every loader produces, and what a loader reports besides its items."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field


class EvalItem(BaseModel):
    """One question: its image, the accepted answers, and (multiple choice) the choices.

    ``images`` lists the separate pictures of a multi-image item; ``image`` is then the
    side-by-side canvas the agent sees (see docs/datasets.md).
    """

    id: str
    image: Path
    question: str
    answers: list[str] = Field(min_length=1)
    choices: list[str] | None = None
    type: str = "all"
    soft: bool = False  # score with VQA soft accuracy (answers are the 10 human answers)
    images: list[Path] | None = None
    pair: str | None = None  # items of one pair (same question, other image) are scored together
    license: str | None = None
    license_url: str | None = None
    source: str | None = None
    # the photo an augmented image was made from; export splits follow it
    source_image: Path | None = None
    augmentation: str | None = None  # how the image was made: flip, crop, none (the photo itself)


class DatasetError(ValueError):
    """The dataset cannot be read; the one-line message names the file and what was expected."""


@dataclass
class LoadedDataset:
    """A loader's result: the items, the layout it read, and the rows it could not use."""

    layout: str
    items: list[EvalItem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def missing_images(self) -> int:
        """Items whose image file does not exist (``eval`` scores them as input errors)."""
        return sum(not item.image.is_file() for item in self.items)
