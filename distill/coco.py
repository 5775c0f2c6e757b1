"""Reading and validating COCO-format instance annotation files.

Only what question generation needs is read: ``images`` (id, file name, size, licence),
``annotations`` (image, category, box, area, crowd flag), ``categories`` and the optional
``licenses`` and ``info``. Anything malformed is a :class:`CocoError` whose one-line message
names the file and the offending entry.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class CocoError(ValueError):
    """The annotation file cannot be used; the message names the file and the problem."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CocoImage(_Loose):
    id: int
    file_name: str = Field(min_length=1)
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    license: int | None = None


class CocoCategory(_Loose):
    id: int
    name: str = Field(min_length=1)
    supercategory: str | None = None


class CocoLicense(_Loose):
    id: int
    name: str
    url: str | None = None


class CocoAnnotation(_Loose):
    id: int
    image_id: int
    category_id: int
    bbox: tuple[float, float, float, float]
    area: float | None = None
    iscrowd: int = 0

    @model_validator(mode="after")
    def _box_is_sane(self) -> CocoAnnotation:
        if self.bbox[2] < 0 or self.bbox[3] < 0:
            raise ValueError(f"bbox {list(self.bbox)} has a negative width or height")
        return self

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x0, y0, x1, y1)`` in pixels."""
        x, y, w, h = self.bbox
        return (x, y, x + w, y + h)

    @property
    def box_area(self) -> float:
        return self.bbox[2] * self.bbox[3]


class CocoFile(_Loose):
    images: list[CocoImage]
    annotations: list[CocoAnnotation]
    categories: list[CocoCategory] = Field(min_length=1)
    licenses: list[CocoLicense] = Field(default_factory=list)
    info: dict[str, object] = Field(default_factory=dict)


@dataclass
class CocoDataset:
    """A validated instance file, indexed by image."""

    path: Path
    images: list[CocoImage]
    categories: dict[int, CocoCategory]
    licenses: dict[int, CocoLicense]
    description: str
    by_image: dict[int, list[CocoAnnotation]] = field(default_factory=dict)

    def category_name(self, annotation: CocoAnnotation) -> str:
        return self.categories[annotation.category_id].name


def _first_error(error: ValidationError) -> str:
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail["loc"])
    return f"{where}: {detail['msg']}"


def load_coco(path: Path) -> CocoDataset:
    """Read and check ``path``; raise :class:`CocoError` with one clear line on any problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CocoError(f"no annotation file at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CocoError(f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise CocoError(f"{path} is not valid JSON ({error})") from None
    expected = "a COCO instance file: an object with images, annotations and categories"
    if not isinstance(raw, dict) or not {"images", "annotations", "categories"} <= raw.keys():
        raise CocoError(f"{path} is not {expected}")
    try:
        parsed = CocoFile.model_validate(raw)
    except ValidationError as error:
        raise CocoError(f"{path}: {_first_error(error)}") from None
    categories = {category.id: category for category in parsed.categories}
    image_ids = {image.id for image in parsed.images}
    if len(image_ids) != len(parsed.images):
        raise CocoError(f"{path}: image ids are not unique")
    by_image: dict[int, list[CocoAnnotation]] = defaultdict(list)
    for annotation in parsed.annotations:
        if annotation.category_id not in categories:
            raise CocoError(
                f"{path}: annotation {annotation.id} names category {annotation.category_id}, "
                "which is not in categories"
            )
        if annotation.image_id not in image_ids:
            raise CocoError(
                f"{path}: annotation {annotation.id} names image {annotation.image_id}, "
                "which is not in images"
            )
        by_image[annotation.image_id].append(annotation)
    description = str(parsed.info.get("description") or path.stem)
    return CocoDataset(
        path=path,
        images=sorted(parsed.images, key=lambda image: image.id),
        categories=categories,
        licenses={entry.id: entry for entry in parsed.licenses},
        description=description,
        by_image={key: sorted(value, key=lambda a: a.id) for key, value in by_image.items()},
    )
