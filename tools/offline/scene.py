"""Captioning and VQA stand-ins built on a textual scene description.

No captioning or VQA weights ship in any registry package. Instead, the specialists that do ship
describe the image in text: detector boxes (with position, size and colour), the image
classifier's labels, the main colours and the OCR text. :class:`SceneCaptioner` turns that
description into a caption with plain rules; :class:`SceneVQA` hands it, with the question, to
a language model (any ``Callable[[str], str]``, e.g. the planner LLM). Both are stand-ins: they
know only what the description says, and SceneVQA refuses (CannotAnswer) when the model replies
that the description does not contain the answer.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from vpagent.tools.cache import pixels_key
from vpagent.tools.errors import CannotAnswer, ToolError
from vpagent.tools.offline._image import as_rgb
from vpagent.tools.offline.coco_names import COCO_CLASSES, classes_named_in
from vpagent.tools.offline.colors import name_color, ranked_colors
from vpagent.tools.roles import OCR, VQA, Captioner, Detector, Image, Matcher
from vpagent.tools.types import Box, TextLine, ToolInfo

MAX_OBJECTS = 20  # objects the detector's best scores give the scene (all counted)
MAX_LISTED = 12  # objects a description lists one by one: those the question names first
MIN_TEXT_CONFIDENCE = 0.5
CLASSIFIER_LABELS = 3
MIN_LABEL_PROBABILITY = 0.05  # a classifier label below this says nothing to the reader
CAPTION_LABEL_MIN = 0.3  # classifier probability a label needs to appear in a caption
CAPTION_TEXT_MIN = 0.85  # OCR confidence a line needs to appear in a caption
DESCRIPTION_CACHE = 32
LEGEND = """The tools: an object detector for 80 common object classes (objects of other kinds \
are never listed); an object's line gives its box [left, top, right, bottom] in percent of the \
image's width and height, where it is, its share of the image's area and its main colour. An \
ImageNet classifier labels the whole image (probabilities), colour naming gives its main \
colours, OCR reads its text."""
UNKNOWN_REPLIES = ("unknown", "i don't know", "i do not know", "cannot", "can't", "not sure",
                   "no information", "not mentioned", "not enough information")  # fmt: skip
NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
PLURALS = {
    "person": "people", "bus": "buses", "skis": "skis", "sheep": "sheep", "knife": "knives",
    "mouse": "mice", "wine glass": "wine glasses", "sandwich": "sandwiches", "couch": "couches",
    "bench": "benches", "toothbrush": "toothbrushes", "scissors": "scissors",
    "hair drier": "hair driers", "cell phone": "cell phones",
}  # fmt: skip


@dataclass
class SceneObject:
    label: str
    box: Box
    score: float
    position: str
    area_fraction: float
    color: str | None = None


@dataclass
class SceneFacts:
    width: int
    height: int
    objects: list[SceneObject] = field(default_factory=list)
    labels: list[tuple[str, float]] = field(default_factory=list)
    colors: list[tuple[str, float]] = field(default_factory=list)
    text: list[TextLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def position_words(box: Box, width: int, height: int) -> str:
    """Where a box's centre sits, by thirds: 'left', 'top right', 'bottom', 'center', ..."""
    cx = (box.x0 + box.x1) / 2 / max(width, 1)
    cy = (box.y0 + box.y1) / 2 / max(height, 1)
    horizontal = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else ""
    vertical = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else ""
    return " ".join(w for w in (vertical, horizontal) if w) or "center"


def color_phrase(label: str, color: str) -> str:
    """'mostly blue', or 'wearing mostly black' for people (their colour is their clothes)."""
    return f"wearing mostly {color}" if label == "person" else f"mostly {color}"


def analyze_scene(
    image: Image,
    detector: Detector | None = None,
    matcher: Matcher | None = None,
    ocr: OCR | None = None,
    max_objects: int = MAX_OBJECTS,
) -> SceneFacts:
    """Run the available specialists once and collect what they report about ``image``."""
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    facts = SceneFacts(width=width, height=height)
    if detector is not None:
        try:
            detect_all = getattr(detector, "detect_all", None)
            if callable(detect_all):
                detections = detect_all(rgb)
            else:
                detections = detector.detect(rgb, list(COCO_CLASSES))
        except ToolError as error:
            facts.notes.append(f"object detector unavailable: {error}")
            detections = []
        for det in sorted(detections, key=lambda d: -d.score)[:max_objects]:
            facts.objects.append(
                SceneObject(
                    label=det.label,
                    box=det.box,
                    score=det.score,
                    position=position_words(det.box, width, height),
                    area_fraction=det.box.area / max(width * height, 1),
                    color=name_color(rgb, det.box, object_name=det.label),
                )
            )
    top_labels = getattr(matcher, "top_labels", None)
    if callable(top_labels):
        try:
            facts.labels = list(top_labels(rgb, CLASSIFIER_LABELS))
        except ToolError as error:
            facts.notes.append(f"image classifier unavailable: {error}")
    facts.colors = ranked_colors(rgb, k=3)
    if ocr is not None:
        try:
            facts.text = [line for line in ocr.read(rgb) if line.confidence >= MIN_TEXT_CONFIDENCE]
        except ToolError as error:
            facts.notes.append(f"OCR unavailable: {error}")
    return facts


def percent_box(box: Box, width: int, height: int) -> str:
    """``[left, top, right, bottom]`` in whole percent of the image's width and height: half
    the tokens of pixel coordinates for a language model that reads digits one by one. (An
    object under half a percent across prints as one number twice.)"""
    x0, y0, x1, y1 = box.as_list()
    w, h = max(width, 1), max(height, 1)
    return f"[{100 * x0 / w:.0f}, {100 * y0 / h:.0f}, {100 * x1 / w:.0f}, {100 * y1 / h:.0f}]"


def listed_objects(objects: list[SceneObject], question: str | None) -> set[int]:
    """The ``id`` of at most :data:`MAX_LISTED` objects: those of the classes the question
    names first (`classes_named_in`: "men" names person, "hot dog" not dog), then by score."""
    named = classes_named_in(question) if question else set()
    ranked = sorted(objects, key=lambda o: (o.label not in named, -o.score))
    return {id(o) for o in ranked[:MAX_LISTED]}


def object_lines(facts: SceneFacts, question: str | None) -> list[str]:
    """The detector's part of the description: the listed objects, then the counts of all."""
    if not facts.objects:
        return ["Objects: none."]
    listed = listed_objects(facts.objects, question)
    shown = (
        f" ({len(listed)} of {len(facts.objects)} shown)"
        if len(listed) < len(facts.objects)
        else ""
    )
    lines = [f"Objects{shown}:"]
    index: Counter[str] = Counter()
    for obj in facts.objects:
        index[obj.label] += 1
        if id(obj) in listed:
            box = percent_box(obj.box, facts.width, facts.height)
            color = f", {color_phrase(obj.label, obj.color)}" if obj.color else ""
            lines.append(
                f"- {obj.label} #{index[obj.label]} {box} {obj.position}, "
                f"{obj.area_fraction:.0%}{color}"
            )
    counts = Counter(obj.label for obj in facts.objects)
    lines.append("Counts: " + ", ".join(f"{n} {label}" for label, n in counts.most_common()) + ".")
    return lines


def format_facts(
    facts: SceneFacts, has_detector: bool = True, has_ocr: bool = True, question: str | None = None
) -> str:
    """The description text an LLM reads after :data:`LEGEND`, compact: every token of it is
    read on every VQA call (an object's line is ~28 tokens; pixel boxes and scores made it ~46),
    while the legend, the same for every image, is in the model's prompt cache. It lists at
    most :data:`MAX_LISTED` objects, those ``question`` names first; the counts cover every
    one."""
    shape = (
        "landscape"
        if facts.width > facts.height
        else "portrait"
        if facts.height > facts.width
        else "square"
    )
    lines = [f"Image: {facts.width}x{facts.height} pixels, {shape}."]
    if has_detector:
        lines.extend(object_lines(facts, question))
    labels = [(label, p) for label, p in facts.labels if p >= MIN_LABEL_PROBABILITY]
    if labels:
        shown = ", ".join(f"{label} {p:.0%}" for label, p in labels)
        lines.append(f"Classifier: {shown}.")
    if facts.colors:
        colors = ", ".join(f"{name} {share:.0%}" for name, share in facts.colors)
        lines.append(f"Main colours: {colors}.")
    if has_ocr:
        if facts.text:
            texts = "; ".join(
                f'"{line.text}" at {position_words(line.box, facts.width, facts.height)}'
                for line in facts.text
            )
            lines.append(f"Text (OCR): {texts}.")
        else:
            lines.append("Text (OCR): none.")
    lines.extend(f"Note: {note}" for note in facts.notes)
    return "\n".join(lines)


def describe_scene(
    image: Image,
    detector: Detector | None,
    matcher: Matcher | None,
    ocr: OCR | None,
) -> str:
    """A plain-text description of ``image`` from the given specialists (any may be None),
    after the :data:`LEGEND` that explains it."""
    facts = analyze_scene(image, detector, matcher, ocr)
    text = format_facts(facts, has_detector=detector is not None, has_ocr=ocr is not None)
    return f"{LEGEND}\n\n{text}"


def _count_phrase(label: str, n: int) -> str:
    if n == 1:
        return f"{'an' if label[0] in 'aeiou' else 'a'} {label}"
    number = NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)
    return f"{number} {PLURALS.get(label, label + 's')}"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def caption_from(facts: SceneFacts) -> str:
    """A one-to-three sentence caption built by rules from the facts."""
    sentences = []
    counts = Counter(obj.label for obj in facts.objects)
    if counts:
        parts = [_count_phrase(label, n) for label, n in counts.most_common(4)]
        sentences.append(f"A photo of {_join(parts)}.")
        largest = sorted(facts.objects, key=lambda o: -o.area_fraction)
        described = []
        for obj in largest:
            if obj.color and obj.label not in {d.label for d in described} and len(described) < 2:
                described.append(obj)
        if described:
            colour_parts = []
            for obj in described:
                where = f" on the {obj.position}" if counts[obj.label] > 1 else ""
                verb = "wears" if obj.label == "person" else "is"
                colour_parts.append(f"the {obj.label}{where} {verb} {obj.color}")
            sentences.append(_join(colour_parts).capitalize() + ".")
    else:
        main = facts.colors[0][0] if facts.colors else None
        sentences.append(
            "A photo with no common objects detected" + (f", mostly {main}." if main else ".")
        )
    if facts.labels and facts.labels[0][1] >= CAPTION_LABEL_MIN:
        label = facts.labels[0][0]
        sentences.append(f"It looks like {'an' if label[0] in 'aeiou' else 'a'} {label}.")
    legible = [line for line in facts.text if line.confidence >= CAPTION_TEXT_MIN][:4]
    if legible:
        words = " ".join(line.text for line in legible)
        sentences.append(f'Text in the image reads "{words}".')
    return " ".join(sentences)


def offline_specialists() -> tuple[Detector, Matcher, OCR]:
    """The offline pack's detector, matcher and OCR (they share one ImageNet classifier)."""
    from vpagent.tools.offline.detector import SSDCocoDetector
    from vpagent.tools.offline.matcher import ClassifierMatcher
    from vpagent.tools.offline.ocr import RapidOCRReader

    return SSDCocoDetector(), ClassifierMatcher(), RapidOCRReader()


class _SceneBase:
    """Holds the specialists and caches one description per image."""

    def __init__(
        self,
        detector: Detector | None,
        matcher: Matcher | None,
        ocr: OCR | None,
        cache_size: int = DESCRIPTION_CACHE,
    ) -> None:
        self.detector = detector
        self.matcher = matcher
        self.ocr = ocr
        self._cache: OrderedDict[str, SceneFacts] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def facts(self, image: Image) -> SceneFacts:
        rgb = as_rgb(image)
        key = pixels_key(rgb)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        facts = analyze_scene(rgb, self.detector, self.matcher, self.ocr)
        with self._lock:
            self._cache[key] = facts
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return facts

    def describe(self, image: Image, question: str | None = None) -> str:
        """The scene's description; ``question`` puts the objects it names first in the list."""
        return format_facts(
            self.facts(image),
            has_detector=self.detector is not None,
            has_ocr=self.ocr is not None,
            question=question,
        )

    def _parts(self) -> str:
        names = [
            f"{role}={type(tool).__name__}"
            for role, tool in (
                ("detector", self.detector),
                ("matcher", self.matcher),
                ("ocr", self.ocr),
            )
            if tool is not None
        ]
        return ", ".join(names) or "no specialists"


class SceneCaptioner(_SceneBase, Captioner):
    """Caption stand-in: rules over the scene description (objects, colours, labels, text)."""

    backend = "scene-description"

    def __init__(
        self,
        detector: Detector | None = None,
        matcher: Matcher | None = None,
        ocr: OCR | None = None,
    ) -> None:
        super().__init__(detector, matcher, ocr)

    @classmethod
    def offline(cls) -> SceneCaptioner:
        """A captioner over the offline pack's detector, matcher and OCR (one shared classifier)."""
        detector, matcher, ocr = offline_specialists()
        return cls(detector, matcher, ocr)

    def caption_batch(self, images: list[Image]) -> list[str]:
        return [caption_from(self.facts(image)) for image in images]

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="rule-based caption over a scene description",
            weights=None,
            device="cpu",
            stand_in=True,
            note=f"stand-in for BLIP/GIT captioning; built from {self._parts()}",
        )


# The part of every prompt that is the same for every image and question: llama.cpp keeps it
# cached, so only the description, the question and a short last line are read per call.
SCENE_QUESTION = (
    """You answer a question about an image that you cannot see. You only have the \
description below, written by vision tools.
"""
    + LEGEND
    + """

Description:
{description}

Question: {question}
"""
)
VQA_PROMPT = (
    SCENE_QUESTION
    + """Use only facts in the description. Reply with the answer only: one word, a number or \
a short phrase. If the description does not contain what is needed to answer, reply exactly: unknown
Answer:"""
)
# A guess (after the VQA role's refusal, or the fallback's) shares the prompt through the
# question: after a refusal, only its last line is new to the model.
GUESS_PROMPT = (
    SCENE_QUESTION
    + """The description may not settle the question: then give the most likely answer given \
what it does say and what such scenes usually look like. Reply with the answer only: one word, a \
number or a short phrase. Never reply unknown.
Answer:"""
)


class SceneVQA(_SceneBase, VQA):
    """VQA stand-in: a language model answers the question over the scene description."""

    backend = "scene-description-llm"

    def __init__(
        self,
        llm: Callable[[str], str],
        detector: Detector | None = None,
        matcher: Matcher | None = None,
        ocr: OCR | None = None,
    ) -> None:
        super().__init__(detector, matcher, ocr)
        self.llm = llm

    @classmethod
    def offline(cls, llm: Callable[[str], str]) -> SceneVQA:
        """A VQA stand-in over the offline pack's detector, matcher and OCR."""
        detector, matcher, ocr = offline_specialists()
        return cls(llm, detector, matcher, ocr)

    def prompt(self, image: Image, question: str, template: str = VQA_PROMPT) -> str:
        """``template`` (the answer prompt by default) with the scene description and question."""
        description = self.describe(image, question)
        return template.format(description=description, question=question.strip())

    def answer_batch(self, images: list[Image], questions: list[str]) -> list[str]:
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        return [
            self._answer(image, question) for image, question in zip(images, questions, strict=True)
        ]

    def guess(self, image: Image, question: str) -> str:
        """The most likely answer even when the description does not settle it (a guess: the
        caller must mark it unverified). CannotAnswer only if the model gives no answer. Its
        prompt shares :meth:`answer`'s through the question."""
        prompt = self.prompt(image, question, GUESS_PROMPT)
        reply = clean_reply(self.llm(prompt))
        if not reply or reply.lower().startswith(UNKNOWN_REPLIES):
            raise CannotAnswer(f"the language model gave no guess for '{question}'")
        return reply

    def _answer(self, image: Image, question: str) -> str:
        reply = clean_reply(self.llm(self.prompt(image, question)))
        if not reply or reply.lower().startswith(UNKNOWN_REPLIES):
            raise CannotAnswer(
                f"cannot answer '{question}' with the scene-description VQA stand-in: the "
                "description of the image (COCO detections, ImageNet labels, colours, OCR text) "
                "does not contain the answer. A VQA model (BLIP) on the 'hf' profile can look "
                "at the pixels."
            )
        return reply

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="LLM over a scene description",
            weights=None,
            device="cpu",
            stand_in=True,
            note=(
                f"stand-in for BLIP VQA; the LLM reads a description built from {self._parts()}; "
                "refuses (CannotAnswer) when the description lacks the answer"
            ),
        )


def clean_reply(reply: str) -> str:
    """First non-empty line of an LLM reply, without an 'Answer:' prefix, quotes or a full stop."""
    for line in str(reply).strip().splitlines():
        line = line.strip()
        if line:
            break
    else:
        return ""
    if line.lower().startswith("answer:"):
        line = line[len("answer:") :].strip()
    return line.strip().rstrip(".").strip("\"'`").rstrip(".").strip()
