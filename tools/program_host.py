"""Host side of the program image API: answers the sandbox's plain-data tool calls.

Arguments come from an untrusted process, so each call is validated (pydantic) before it
touches a model; boxes are clipped to the image. Results go back as plain data and are
cached by (image content hash, tool, arguments). Visual artifacts (boxes, masks) of each call
are kept for the trace.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vpagent.tools.cache import cache_key
from vpagent.tools.errors import CannotAnswer
from vpagent.tools.referring import Reference, split_reference
from vpagent.tools.roles import Detector
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import Box, Detection, Mark, PropertyEvidence, StepArtifacts

Text = Annotated[str, Field(min_length=1, max_length=500)]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegionArgs(_Args):
    image: str
    box: tuple[float, float, float, float]

    @field_validator("box")
    @classmethod
    def _no_nan(cls, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A NaN coordinate has no place to clip to (infinities clip to the image's edge)."""
        if any(math.isnan(value) for value in box):
            raise ValueError("a box coordinate is NaN")
        return box


class FindArgs(RegionArgs):
    name: Text
    thorough: bool = False


class PropertyArgs(RegionArgs):
    name: Text
    property: Text


class OptionsArgs(RegionArgs):
    options: Annotated[list[Text], Field(min_length=1, max_length=50)]


class QuestionArgs(RegionArgs):
    question: Text


class LLMArgs(_Args):
    question: Annotated[str, Field(min_length=1, max_length=2000)]


FACE_NAMES = frozenset({"face", "faces", "human face", "human faces"})
MIN_REGION_PIXELS = 2
MAX_RANKED = 16  # locate ranks at most this many boxes (best detector scores first)
NO_EVIDENCE = PropertyEvidence(score=float("-inf"), holds=False)  # too small, or not in view


def _finite(score: float) -> float | None:
    """A score for the trace's JSON: rounded, or None where there was no evidence."""
    return round(score, 4) if math.isfinite(score) else None


def image_sha256(pixels: np.ndarray) -> str:
    """Content hash of an image (shape and pixels), the cache's image key."""
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.hexdigest()


Operation = Callable[[Any], tuple[Any, StepArtifacts]]
"""One tool of the program API, host side: parsed arguments -> (value, what to draw)."""


class ProgramHost:
    """Answers the tool calls of programs that look at one image. Callable as a ToolHandler."""

    def __init__(
        self,
        toolbox: Toolbox,
        pixels: np.ndarray,
        image_id: str | None = None,
        *,
        marks: Sequence[Mark] = (),
    ) -> None:
        if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
            raise ValueError("ProgramHost needs an RGB uint8 image of shape (H, W, 3)")
        self.toolbox = toolbox
        self.pixels = pixels
        self.sha256 = image_sha256(pixels)
        self.image_id = image_id or self.sha256[:16]
        self.given_marks = list(marks)  # marks given with the question (ask(..., marks=...))
        self.artifacts: dict[int, StepArtifacts] = {}
        self._calls = 0
        self._lock = threading.Lock()
        self._operations: dict[str, tuple[type[_Args], Operation]] = {
            "find": (FindArgs, self._find),
            "verify_property": (PropertyArgs, self._verify_property),
            "best_text_match": (OptionsArgs, self._best_text_match),
            "simple_query": (QuestionArgs, self._simple_query),
            "caption": (RegionArgs, self._caption),
            "ocr": (RegionArgs, self._ocr),
            "compute_depth": (RegionArgs, self._compute_depth),
            "segment": (RegionArgs, self._segment),
            "llm_query": (LLMArgs, self._llm_query),
            "marks": (RegionArgs, self._marks),
            "object_at": (RegionArgs, self._object_at),
            "point_depth": (RegionArgs, self._point_depth),
        }

    @property
    def image(self) -> dict[str, Any]:
        """The plain-data image description the sandboxed program receives."""
        height, width = self.pixels.shape[:2]
        return {"id": self.image_id, "width": width, "height": height}

    def __call__(self, tool: str, args: dict[str, Any]) -> Any:
        with self._lock:
            index = self._calls
            self._calls += 1
        if tool not in self._operations:
            raise ValueError(f"unknown tool '{tool}'")
        model, operation = self._operations[tool]
        try:
            parsed = model.model_validate(args)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()
            )
            raise ValueError(f"bad arguments for {tool}: {problems}") from None
        if isinstance(parsed, RegionArgs) and parsed.image != self.image_id:
            raise ValueError(f"unknown image '{parsed.image}'")
        hit, value = self.toolbox.cache.get(self._key(tool, parsed))
        if hit:
            self.artifacts[index] = StepArtifacts.model_validate(value["artifacts"])
            return value["value"]
        value, artifacts = operation(parsed)
        cached = {"value": value, "artifacts": artifacts.model_dump(mode="json", exclude_none=True)}
        self.toolbox.cache.put(self._key(tool, parsed), cached)
        self.artifacts[index] = artifacts
        return value

    def _key(self, tool: str, args: _Args) -> str:
        arguments = args.model_dump(mode="json")
        if tool == "marks" and self.given_marks:  # the answer also depends on the given marks
            arguments["given"] = [mark.model_dump(mode="json") for mark in self.given_marks]
        return cache_key(self.sha256, tool, arguments)

    # Regions.

    def _region(self, args: RegionArgs) -> tuple[np.ndarray, Box]:
        height, width = self.pixels.shape[:2]
        box = Box.of(args.box).clip(width, height)
        x0, y0 = int(np.floor(box.x0)), int(np.floor(box.y0))
        x1, y1 = int(np.ceil(box.x1)), int(np.ceil(box.y1))
        if x1 - x0 < MIN_REGION_PIXELS or y1 - y0 < MIN_REGION_PIXELS:
            raise ValueError(f"the region {args.box} is empty after clipping to the image")
        return self.pixels[y0:y1, x0:x1], Box(x0=x0, y0=y0, x1=x1, y1=y1)

    # Operations: each returns (plain-data value for the program, artifacts for the trace).

    def _find(self, args: FindArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        name = args.name.strip().lower()
        detector = self.toolbox.specialist("detector")
        reference = split_reference(name)
        rank = reference.attribute is not None and not detector.reads_attributes
        query = reference.noun if rank else name  # "black dog": a closed vocabulary has "dog"
        if name in FACE_NAMES:
            detections = self.toolbox.detect_faces(crop)
        elif args.thorough:
            detections = self._search(crop, query)
        else:
            detections = self.toolbox.detect(crop, [query])
        detections = sorted(detections, key=lambda d: d.score, reverse=True)
        artifacts = StepArtifacts(region=region.as_list())
        notes = []
        if rank:
            detections, ranking, note = self._refer(crop, detections, reference, args.thorough)
            artifacts.attribute = ranking
            notes += [note] if note else []
        hits = [
            {"box": d.box.shift(region.x0, region.y0).as_list(), "score": d.score, "label": name}
            for d in detections
        ]
        artifacts.boxes = hits
        if args.thorough:
            if not hits:
                raise CannotAnswer(f"no '{name}' in the image, even searching harder")
            threshold = detector.score_threshold
            if threshold is not None and hits[0]["score"] < threshold:
                notes.append(
                    f"the best '{name}' scores {hits[0]['score']:.2f}, below the detector's "
                    f"threshold {threshold}: it may not be there"
                )
        if notes:
            artifacts.unverified = "; ".join(notes)
        return hits, artifacts

    def _refer(
        self, crop: np.ndarray, detections: list[Detection], reference: Reference, keep_all: bool
    ) -> tuple[list[Detection], dict[str, Any], str | None]:
        """Rank a closed-vocabulary detector's boxes by the property the name asks for ("black"
        of "black dog"): (the boxes, best first, the ranking for the trace, a note if the
        result is unverified). ``find`` keeps the boxes that have the property; ``locate``
        (``keep_all``) keeps its MAX_RANKED best-scoring boxes, so the best match comes first
        even if none clearly has it. Ties go to the detector's score.
        """
        noun, attribute = reference.noun, str(reference.attribute)
        if keep_all:
            detections = detections[:MAX_RANKED]
        scored: list[tuple[Detection, PropertyEvidence]] = []
        refusals: list[str] = []
        for detection in detections:
            box = detection.box
            x0, y0 = max(int(np.floor(box.x0)), 0), max(int(np.floor(box.y0)), 0)
            patch = crop[y0 : int(np.ceil(box.y1)), x0 : int(np.ceil(box.x1))]
            evidence = NO_EVIDENCE
            if min(patch.shape[:2]) >= MIN_REGION_PIXELS:
                try:
                    evidence = self.toolbox.property_evidence(patch, noun, attribute)
                except CannotAnswer as refusal:  # e.g. a person's legs out of view in the box
                    refusals.append(str(refusal))
            scored.append((detection, evidence))
        if detections and len(refusals) == len(detections):
            ranking = {"property": attribute, "ranked": False, "why": refusals[0]}
            note = f"'{attribute}' could not be checked, so every '{noun}' is kept ({refusals[0]})"
            return detections, ranking, note
        scored.sort(key=lambda pair: (pair[1].score, pair[0].score), reverse=True)
        kept = scored if keep_all else [pair for pair in scored if pair[1].holds]
        ranking = {
            "property": attribute,
            "ranked": True,
            "scores": [_finite(evidence.score) for _, evidence in kept],
            "holds": [evidence.holds for _, evidence in kept],
        }
        note = None
        if keep_all and kept and not kept[0][1].holds:
            note = f"no '{noun}' is clearly '{attribute}'; the closest match is taken"
        return [detection for detection, _ in kept], ranking, note

    def _search(self, crop: np.ndarray, name: str) -> list[Detection]:
        """The detector's harder search where it has one (tiles, flip, low threshold); otherwise
        the toolbox's batched detection."""
        detector = self.toolbox.specialist("detector")
        if type(detector).search is Detector.search:
            return self.toolbox.detect(crop, [name])
        return detector.search(crop, name)

    def _verify_property(self, args: PropertyArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        try:
            verdict = bool(self.toolbox.verify_property(crop, args.name, args.property))
        except CannotAnswer as refusal:
            question = f"Is the {args.name} {args.property}? Answer yes or no."
            reply = self._guess(crop, question, refusal)
            verdict = reply.strip().lower().startswith(("yes", "true"))
            return verdict, StepArtifacts(
                region=region.as_list(),
                unverified=f"a guess: the matcher cannot check '{args.property}' ({refusal})",
            )
        return verdict, StepArtifacts(region=region.as_list())

    def _guess(self, crop: np.ndarray, question: str, refusal: CannotAnswer) -> str:
        """The VQA role's best guess where it offers one; otherwise the original refusal."""
        try:
            return str(self.toolbox.specialist("vqa").guess(crop, question))
        except CannotAnswer:
            raise refusal from None

    def best_guess(self, question: str) -> tuple[str, str]:
        """Answer ``question`` about the whole image without a program: (answer, how).

        The fallback's answer is unverified whatever it is, so a VQA role that offers guesses
        is asked for its best guess at once (one model call, not an answer refused and then
        a guess); one that offers none answers directly.
        """
        vqa = self.toolbox.specialist("vqa")
        backend = f"the {vqa.info().backend} VQA backend"
        try:
            return str(vqa.guess(self.pixels, question)), f"a best guess by {backend}"
        except CannotAnswer:  # it offers no guesses (or had none): its direct answer
            return self.toolbox.answer(self.pixels, question), f"answered directly by {backend}"

    def _best_text_match(self, args: OptionsArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        index = self.toolbox.best_text_match(crop, list(args.options))
        return args.options[index], StepArtifacts(region=region.as_list())

    def _simple_query(self, args: QuestionArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        try:
            return self.toolbox.answer(crop, args.question), StepArtifacts(region=region.as_list())
        except CannotAnswer as refusal:
            reply = self._guess(crop, args.question, refusal)
            return reply, StepArtifacts(region=region.as_list(), unverified=f"a guess ({refusal})")

    def _caption(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        return self.toolbox.caption(crop), StepArtifacts(region=region.as_list())

    def _ocr(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        crop, region = self._region(args)
        lines = self.toolbox.read_text(crop)
        boxes = [
            {"box": line.box.shift(region.x0, region.y0).as_list(), "label": line.text}
            for line in lines
        ]
        text = "\n".join(line.text for line in lines)
        return text, StepArtifacts(region=region.as_list(), boxes=boxes)

    def _compute_depth(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        _, region = self._region(args)
        depth = self.toolbox.depth(self.pixels)
        window = depth[int(region.y0) : int(region.y1), int(region.x0) : int(region.x1)]
        return float(np.median(window)), StepArtifacts(region=region.as_list())

    def _segment(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        _, region = self._region(args)
        mask = self.toolbox.segment(self.pixels, region)
        fraction = mask.area / max(region.area, 1.0)
        return min(fraction, 1.0), StepArtifacts(region=region.as_list(), mask=mask.to_rle())

    def _marks(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        """The marks given with the question, then those drawn on the image (labels not given),
        whose point lies in the region."""
        from vpagent.tools.offline.marks import shared_mark_finder

        _, region = self._region(args)
        given = {mark.label for mark in self.given_marks if mark.label}
        drawn = [m for m in shared_mark_finder().find(self.pixels) if m.label not in given]
        inside = [
            mark
            for mark in [*self.given_marks, *drawn]
            if region.x0 <= mark.point[0] <= region.x1 and region.y0 <= mark.point[1] <= region.y1
        ]
        hits = [
            {"box": mark.box.as_list(), "label": mark.label, "score": 1.0, "kind": mark.kind}
            for mark in inside
        ]
        return hits, StepArtifacts(region=region.as_list(), boxes=hits)

    def _objects(self) -> list[Detection]:
        """Every object the detector finds in the whole image (its classes, or COCO's)."""
        detector = self.toolbox.specialist("detector")
        detect_all = getattr(detector, "detect_all", None)
        if callable(detect_all):
            return list(detect_all(self.pixels))
        from vpagent.tools.offline.coco_names import COCO_CLASSES

        return self.toolbox.detect(self.pixels, list(COCO_CLASSES))

    def _object_at(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        from vpagent.tools.offline.depth import front_object

        _, region = self._region(args)
        point = ((region.x0 + region.x1) / 2, (region.y0 + region.y1) / 2)
        found = front_object(point, self._objects())
        if found is None:
            raise CannotAnswer(
                f"no detected object under the point ({point[0]:.0f}, {point[1]:.0f}): the "
                "detector finds none whose box holds it"
            )
        hit = {"box": found.box.as_list(), "label": found.label, "score": found.score}
        return hit, StepArtifacts(region=region.as_list(), boxes=[hit])

    def _point_depth(self, args: RegionArgs) -> tuple[Any, StepArtifacts]:
        """Depth at the region's centre; with the ground-plane stand-in, at the ground contact
        of the object under it (see vpagent.tools.offline.depth)."""
        from vpagent.tools.offline.depth import ground_contact

        _, region = self._region(args)
        point = ((region.x0 + region.x1) / 2, (region.y0 + region.y1) / 2)
        boxes = []
        if self.toolbox.specialist("depth").info().stand_in:
            point, found = ground_contact(point, self._objects())
            if found is not None:
                boxes.append({"box": found.box.as_list(), "label": found.label})
        depth = self.toolbox.depth(self.pixels)
        row = min(max(int(point[1]), 0), depth.shape[0] - 1)
        column = min(max(int(point[0]), 0), depth.shape[1] - 1)
        return float(depth[row, column]), StepArtifacts(region=region.as_list(), boxes=boxes)

    def _llm_query(self, args: LLMArgs) -> tuple[Any, StepArtifacts]:
        return self.toolbox.llm_query(args.question), StepArtifacts()
