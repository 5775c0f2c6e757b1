"""Matcher stand-in: ImageNet classifier labels + MiniLM text similarity + pixel colour naming.

No CLIP/SigLIP weights ship in any registry package, so image-text matching is approximated:

- the object part of a text ("dog", "golden retriever", "a bus") is compared, with MiniLM, to the
  classifier's top-k ImageNet labels (each with its everyday category, "whippet (dog)"); the
  score is the label-probability-weighted mean similarity;
- the colour part ("red", "white truck") is scored by the pixel colour namer on the object's
  own pixels (a GrabCut mask inside the crop): the colour's share relative to the dominant one.

Scores are independent per text, in [0, 1], and comparable across calls; they are not softmaxed
across the texts. ``verify`` answers colour properties with the colour namer, category
properties ("a puppy", "a retriever") with the classifier and, on people, part colours ("red
shirt", "gray-haired") and worn items ("sunglasses", "a tie") on the part's crop, and
sunglasses also on the face's box where the face detector (Haar) finds one
(:mod:`vpagent.tools.offline.parts`); anything else (materials, actions, states) is refused with
CannotAnswer, which the program host turns into a marked guess.
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import numpy as np

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.offline._image import as_rgb
from vpagent.tools.offline.classifier import NUM_CLASSES, EfficientNetClassifier, shared_classifier
from vpagent.tools.offline.coco_names import exact_classes, singular
from vpagent.tools.offline.colors import (
    COLOR_WORDS,
    color_distribution,
    color_share,
    is_main_color,
    object_distribution,
    object_mask,
    palette_names,
)
from vpagent.tools.offline.faces import HaarFaceDetector
from vpagent.tools.offline.parts import FACE_WORN, WEARABLE_PART, face_crop, part_crop, part_of
from vpagent.tools.offline.text_embed import MiniLMEmbedder, shared_embedder
from vpagent.tools.roles import FaceDetector, Image, Matcher
from vpagent.tools.types import PropertyEvidence, ToolInfo

TOP_K = 10
CATEGORY_SIMILARITY = 0.62  # a property this close to some ImageNet label is a category
CATEGORY_PRESENT = 0.15  # classifier mass on those labels needed to say "yes"
WEARABLE_PRESENT = 0.05  # classifier mass on the wearable's labels in its part's crop (or on the
# face box, for sunglasses) for "yes";
# chosen on coco128 people with and without a tie (torso crop: 4/6 ties found, 3/92 false)
FILLER = {"a", "an", "the", "photo", "picture", "image", "of", "is", "that", "this", "it", "its",
          "colored", "coloured", "color", "colour", "in", "wearing", "wears", "with", "has",
          "have", "having", "on", "his", "her", "their"}  # fmt: skip
WORD_RE = re.compile(r"[a-z]+(?:-[a-z]+)*")


def split_text(text: str) -> tuple[list[str], str]:
    """(colour words in ``text``, the remaining object phrase)."""
    words = WORD_RE.findall(text.lower())
    colors = [w for w in words if w in COLOR_WORDS]
    rest = [w for w in words if w not in COLOR_WORDS and w not in FILLER]
    return list(dict.fromkeys(colors)), " ".join(rest)


class ClassifierMatcher(Matcher):
    """CLIP-style matcher stand-in built from the ImageNet classifier, MiniLM and colour naming."""

    backend = "classifier-minilm"

    def __init__(
        self,
        classifier: EfficientNetClassifier | None = None,
        embedder: MiniLMEmbedder | None = None,
        top_k: int = TOP_K,
        faces: FaceDetector | None = None,
    ) -> None:
        self.classifier = classifier if classifier is not None else shared_classifier()
        self._embedder = embedder
        self.faces = faces if faces is not None else HaarFaceDetector()  # loads on first use
        self.top_k = top_k
        self._label_lock = threading.Lock()
        self._label_texts: list[str] | None = None

    @property
    def embedder(self) -> MiniLMEmbedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    def _labels(self) -> list[str]:
        with self._label_lock:
            if self._label_texts is None:
                self._label_texts = [self.classifier.describe_label(i) for i in range(NUM_CLASSES)]
            return self._label_texts

    # Scores.

    def top_labels(self, image: Image, k: int = 5) -> list[tuple[str, float]]:
        """The classifier's ``k`` best ImageNet labels with probabilities."""
        return self.classifier.top_k(as_rgb(image), k)

    def score_batch(self, images: list[Image], texts: list[list[str]]) -> list[list[float]]:
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} text lists")
        return [
            self._scores(as_rgb(image), options)
            for image, options in zip(images, texts, strict=True)
        ]

    def _scores(self, image: np.ndarray, texts: list[str]) -> list[float]:
        parts = [split_text(text) for text in texts]
        object_scores: dict[str, float] = {}
        if any(rest for _, rest in parts):
            probs = self.classifier.probabilities(image)
            top = np.argsort(-probs)[: self.top_k]
            weights = probs[top] / max(float(probs[top].sum()), 1e-6)
            labels = self._labels()
            phrases = list(dict.fromkeys(rest for _, rest in parts if rest))
            similarity = self.embedder.similarity(phrases, [labels[i] for i in top])
            for phrase, row in zip(phrases, similarity, strict=True):
                object_scores[phrase] = float(np.clip(row @ weights, 0.0, 1.0))
        distributions: dict[str, dict[str, float]] = {}  # per object word (salience differs)
        scores = []
        for colors, rest in parts:
            components = []
            if rest:
                components.append(object_scores[rest])
            if colors:
                if rest not in distributions:
                    distributions[rest] = object_distribution(image, rest or None)
                shares = distributions[rest]
                best = max(shares.values()) or 1.0
                share = float(np.mean([color_share(shares, c) for c in colors]))
                components.append(min(share / best, 1.0))
            scores.append(float(np.mean(components)) if components else 0.0)
        return scores

    def best_match(self, image: Image, options: list[str]) -> int:
        """Index of the best option; options that differ only in colour go to the colour namer."""
        if not options:
            raise ValueError("best_match needs at least one option")
        parts = [split_text(option) for option in options]
        objects = {rest for _, rest in parts}
        if all(colors for colors, _ in parts) and len(objects) == 1:
            shares = object_distribution(as_rgb(image), objects.pop() or None)
            # An alias covering two palette colours ("silver": gray or white) is ranked by the
            # better of them, not their sum, or it would beat every single colour.
            strength = [
                np.mean([max(shares[n] for n in palette_names(c)) for c in colors])
                for colors, _ in parts
            ]
            return int(np.argmax(strength))
        return int(np.argmax(self.scores(image, options)))

    def property_evidence(self, image: Image, name: str, prop: str) -> PropertyEvidence:
        """How strongly the ``name`` in ``image`` (usually its crop) shows ``prop``: a colour's
        share of the object's own pixels (the weakest, for "red and white"), or the classifier's
        mass on the ImageNet labels the property names. For people, a property that names a
        part ("gray-haired", "red shirt", "wearing a hat") is checked on that part of the box,
        and sunglasses on the face box too (:mod:`vpagent.tools.offline.parts`)."""
        rgb = as_rgb(image)
        colors, rest = split_text(prop.replace("-", " "))
        person = exact_classes(name) == ("person",)
        part = part_of(rest.split()) if person else None
        if colors:  # "red", "red shirt": the colour of the object, or of the part named
            region = rgb if part is None else part_crop(rgb, part)
            if region is None:
                raise CannotAnswer(f"the {part} of the {name} is not in view in its box")
            if part is None:
                shares = color_distribution(region, mask=object_mask(region), object_name=name)
            else:  # a part's crop: all of it is the part
                shares = color_distribution(region)
            # "red and white": every colour named must be there; the weakest one decides
            return PropertyEvidence(
                score=min(color_share(shares, color) for color in colors),
                holds=all(is_main_color(shares, color) for color in colors),
            )
        phrase = rest or prop.strip().lower()
        related = self.related_labels(phrase)
        worn = [int(i) for i in related if int(i) in WEARABLE_PART] if person else []
        if worn:  # a wearable: classify the part it is worn on (sunglasses: the face too)
            mass = self._wearable_mass(rgb, part, worn)
            return PropertyEvidence(score=mass, holds=mass >= WEARABLE_PRESENT)
        if len(related) == 0:
            raise CannotAnswer(
                f"cannot verify '{prop}' for '{name}' with the offline matcher stand-in "
                "(ImageNet classifier + MiniLM + colour naming): it answers colours and ImageNet "
                "categories only, and no ImageNet label is close to this property. A CLIP/SigLIP "
                "matcher on the 'hf' profile can."
            )
        mass = float(self.classifier.probabilities(rgb)[related].sum())
        return PropertyEvidence(score=mass, holds=mass >= CATEGORY_PRESENT)

    def _wearable_mass(self, person: np.ndarray, part: str | None, worn: list[int]) -> float:
        """Classifier mass on the ``worn`` labels in the crop of the part they are worn on
        (``part`` if the words named one); for labels worn on the face, the larger of that and
        their mass on the face box, where the face detector finds one."""
        where = part or Counter(WEARABLE_PART[i] for i in worn).most_common(1)[0][0]
        region = part_crop(person, where)
        region = person if region is None else region
        mass = float(self.classifier.probabilities(region)[worn].sum())
        on_face = [i for i in worn if i in FACE_WORN]
        if on_face:
            face = face_crop(person, [d.box for d in self.faces.detect_faces(person)])
            if face is not None:
                mass = max(mass, float(self.classifier.probabilities(face)[on_face].sum()))
        return mass

    def related_labels(self, phrase: str) -> np.ndarray:
        """Indices of ImageNet labels that ``phrase`` names: a whole-word match in a label's
        synonyms ("retriever" -> four retrievers) or MiniLM similarity >= CATEGORY_SIMILARITY."""
        phrase = phrase.strip().lower()
        words = phrase.split()
        base = " ".join([*words[:-1], singular(words[-1])]) if words else phrase
        pattern = re.compile(rf"\b(?:{re.escape(phrase)}|{re.escape(base)})s?\b")
        labels = self._labels()
        lexical = [
            i
            for i, label in enumerate(self.classifier.labels)
            if pattern.search(label.lower()) or pattern.search(labels[i].lower())
        ]
        similarity = self.embedder.encode_vocabulary(labels) @ self.embedder.encode([phrase])[0]
        semantic = np.flatnonzero(similarity >= CATEGORY_SIMILARITY).tolist()
        return np.array(sorted({*lexical, *semantic}), dtype=np.int64)

    def info(self) -> ToolInfo:
        return ToolInfo(
            role=self.role,
            backend=self.backend,
            model="EfficientNet-Lite3 ImageNet labels + all-MiniLM-L6-v2 + HSV colour naming",
            weights=self.classifier.info().weights,
            device="cpu",
            stand_in=True,
            note=(
                "stand-in for CLIP/SigLIP: scores a text by MiniLM similarity to the top-"
                f"{self.top_k} ImageNet labels and by pixel colour shares; verifies colours and "
                "ImageNet categories (worn items on a person's part, sunglasses also on the "
                "face box), refuses other properties"
            ),
        )
