"""Map a free-form object name ("men", "puppy", "red cars") to COCO classes, or refuse.

The offline detector only knows the 80 COCO classes. :class:`CocoNameMapper` resolves a query in
this order and stops at the first hit:

1. normalise: lower case, drop articles/punctuation, cut trailing qualifiers ("man in a hat"
   -> "man"), drop leading colour/size adjectives;
2. exact COCO name, synonym or group word ("vehicle", "animal", "food"), for the whole phrase,
   its last two words, its last word - each as written and singularised ("buses" -> "bus") -
   then any other word of the phrase ("cars parked" -> car);
3. a head noun that names a part or a thing COCO lacks ("face", "tree", "sky") is refused here;
4. MiniLM similarity between the phrase and every class name and synonym, above a threshold;
5. otherwise CannotAnswer, naming the stand-in and what it can detect.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

import numpy as np

from vpagent.tools.errors import CannotAnswer

# TensorFlow object-detection COCO ids (1-based, with gaps) -> COCO 2017 names.
COCO_TF_IDS: dict[int, str] = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}  # fmt: skip
COCO_CLASSES: tuple[str, ...] = tuple(COCO_TF_IDS.values())

ANIMALS = ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe")
VEHICLES = ("bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat")
FOOD = (
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake",
)  # fmt: skip

# Words that name one COCO class without being its COCO name (comma-separated).
CLASS_SYNONYMS: dict[str, str] = {
    "person": (
        "man, woman, men, women, people, persons, human, humans, child, children, kid, boy, girl,"
        " baby, toddler, player, lady, gentleman, guy, pedestrian, adult, teenager, someone,"
        " somebody, individual, athlete, footballer, soccer player, tennis player, skier, surfer,"
        " skateboarder, rider, cyclist, driver, worker, officer, policeman, coach, referee,"
        " student, teacher, chef, waiter, tourist, passenger, spectator, crowd, figure, father,"
        " mother, son, daughter, husband, wife, friend, bride, groom, manager, businessman,"
        " businesswoman, schoolboy, schoolgirl, audience"
    ),
    "dog": (
        "puppy, pup, doggy, doggie, hound, canine, retriever, labrador, terrier, bulldog, poodle,"
        " spaniel, shepherd"
    ),
    "cat": "kitten, kitty, feline, tabby",
    "horse": "pony, foal, stallion, mare",
    "sheep": "lamb, ram, ewe",
    "cow": "cattle, bull, ox, oxen, heifer",
    "bird": (
        "seagull, gull, pigeon, duck, goose, parrot, sparrow, crow, swan, eagle, owl, chicken, hen,"
        " rooster"
    ),
    "bear": "polar bear, grizzly, brown bear",
    "car": (
        "automobile, auto, motorcar, sedan, taxi, cab, suv, jeep, hatchback, coupe, convertible,"
        " minivan, van, police car, station wagon"
    ),
    "truck": (
        "lorry, pickup, pickup truck, pick-up, semi, fire truck, firetruck, dump truck, tow truck"
    ),
    "bus": "autobus, minibus, coach bus, school bus, double decker, trolleybus, omnibus",
    "airplane": "plane, aeroplane, airliner, jet, aircraft, jetliner, jumbo jet",
    "boat": (
        "ship, yacht, sailboat, canoe, kayak, ferry, vessel, motorboat, speedboat, dinghy, rowboat"
    ),
    "train": "locomotive, tram, streetcar, railcar, subway",
    "bicycle": "bike, cycle",
    "motorcycle": "motorbike, scooter, moped",
    "cell phone": "phone, cellphone, smartphone, mobile phone, mobile, iphone, telephone",
    "tv": "television, tv set, monitor, screen, tvmonitor",
    "couch": "sofa, settee",
    "dining table": "table, desk, dinner table, kitchen table",
    "potted plant": "plant, houseplant, pot plant, flowerpot",
    "sports ball": "ball, football, soccer ball, basketball, tennis ball, baseball, volleyball",
    "handbag": "bag, purse, shoulder bag",
    "suitcase": "luggage, baggage, trolley case",
    "cup": "mug, teacup, coffee cup",
    "wine glass": "glass, goblet, wineglass, wine glasses",
    "donut": "doughnut",
    "refrigerator": "fridge, freezer",
    "hair drier": "hair dryer, hairdryer, blow dryer",
    "laptop": "notebook computer, computer, macbook",
    "remote": "remote control, controller",
    "mouse": "computer mouse",
    "tie": "necktie",
    "teddy bear": "teddy, stuffed animal, plush toy",
    "skis": "ski",
    "bench": "park bench",
    "backpack": "rucksack, knapsack",
    "chair": "stool, armchair, seat",
    "oven": "stove, cooker",
    "traffic light": "traffic signal, stoplight",
    "fire hydrant": "hydrant",
    "book": "novel",
    "clock": "watch",
    "elephant": "elephants",
}

# Words that name a group of COCO classes.
GROUPS: dict[str, tuple[str, ...]] = {
    "animal": ANIMALS,
    "pet": ("cat", "dog"),
    "vehicle": VEHICLES,
    "food": FOOD,
    "fruit": ("banana", "apple", "orange"),
    "vegetable": ("broccoli", "carrot"),
    "furniture": ("chair", "couch", "bed", "dining table", "bench"),
    "cutlery": ("fork", "knife", "spoon"),
    "utensil": ("fork", "knife", "spoon"),
    "silverware": ("fork", "knife", "spoon"),
    "dessert": ("donut", "cake"),
    "appliance": ("microwave", "oven", "toaster", "sink", "refrigerator"),
    "electronics": ("tv", "laptop", "mouse", "remote", "keyboard", "cell phone"),
}

SYNONYMS: dict[str, tuple[str, ...]] = {
    **{
        word.strip(): (cls,)
        for cls, words in CLASS_SYNONYMS.items()
        for word in words.split(",")
        if word.strip()
    },
    **GROUPS,
}

IRREGULAR_PLURALS = {
    "men": "man", "women": "woman", "people": "person", "children": "child", "mice": "mouse",
    "knives": "knife", "geese": "goose", "teeth": "tooth", "feet": "foot", "oxen": "ox",
    "sheep": "sheep", "skis": "skis", "buses": "bus", "busses": "bus", "glasses": "glasses",
    "scissors": "scissors", "calves": "calf", "wolves": "wolf", "leaves": "leaf",
    "shelves": "shelf", "loaves": "loaf", "dice": "die", "benches": "bench",
    "sandwiches": "sandwich",
    "couches": "couch", "watches": "watch", "boxes": "box", "ponies": "pony", "puppies": "puppy",
    "kitties": "kitty", "ladies": "lady", "babies": "baby", "lorries": "lorry", "taxis": "taxi",
    "dishes": "dish", "brushes": "brush", "toothbrushes": "toothbrush", "tomatoes": "tomato",
    "potatoes": "potato", "species": "species", "series": "series", "bicycles": "bicycle",
}  # fmt: skip

ARTICLES = {"a", "an", "the", "some", "any", "all", "every", "each", "this", "that", "these",
            "those", "my", "his", "her", "their", "its", "our", "your", "one", "two", "three",
            "several", "many", "few"}  # fmt: skip
QUALIFIER_STARTS = {"in", "with", "on", "of", "at", "near", "wearing", "holding", "that", "which",
                    "who", "from", "under", "behind", "beside", "next", "by", "to", "for", "riding",
                    "carrying", "sitting", "standing", "walking", "playing", "looking"}  # fmt: skip
MODIFIERS = {
    "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray",
    "grey", "silver", "gold", "golden", "dark", "light", "bright", "big", "small", "large", "tiny",
    "little", "huge", "tall", "short", "long", "old", "young", "new", "left", "right", "front",
    "back", "top", "bottom", "middle", "leftmost", "rightmost", "first", "second", "third", "last",
    "other", "closest", "nearest", "farthest", "biggest", "smallest", "largest", "parked",
    "moving", "empty", "full", "wooden", "metal", "plastic", "single", "entire", "whole", "main",
}  # fmt: skip

# MiniLM cosine similarity a phrase must reach before we trust the nearest vocabulary entry. Chosen
# on probes against the class names + synonyms: accepted "pupper"->pup 0.79, "toddlers"->toddler
# 0.88, "banana bunch"->banana 0.76; refused "quasar" 0.38, "galaxy"->smartphone 0.59,
# "tiger"->bulldog 0.58, "monkey"->banana 0.63, "spaceship"->ship 0.64, "deer"->cattle 0.61.
SIMILARITY_THRESHOLD = 0.66

# Words that look close to a class in embedding space but are not that class. A face, an eye or
# a shirt is part of a person, not a person box; the face detector serves faces.
NOT_DETECTABLE = {
    "face", "faces", "head", "eye", "eyes", "hand", "hands", "arm", "leg", "foot", "hair",
    "shirt", "jacket", "coat", "hat", "cap", "shoe", "shoes", "glasses", "sunglasses", "dress",
    "sky", "cloud", "clouds", "grass", "tree", "trees", "road", "street", "building", "wall",
    "floor", "window", "door", "water", "sea", "beach", "sand", "mountain", "text", "sign",
    "letter", "word", "logo", "wheel", "tire", "tyre", "shadow", "light", "lamp",
}  # fmt: skip

WORD_RE = re.compile(r"[a-z0-9]+(?:[-'][a-z0-9]+)*")


def singular(word: str) -> str:
    """A best-effort English singular of a lower-case word."""
    if word in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def normalise(name: str) -> list[str]:
    """The words of the noun phrase that names the object: no articles, no trailing clause."""
    words = WORD_RE.findall(name.lower().replace("_", " "))
    for index, word in enumerate(words):
        if index > 0 and word in QUALIFIER_STARTS:
            words = words[:index]
            break
    words = [w for w in words if w not in ARTICLES]
    while len(words) > 1 and words[0] in MODIFIERS:
        words = words[1:]
    return words


def _lookup(phrase: str) -> tuple[str, ...] | None:
    if phrase in COCO_CLASSES:
        return (phrase,)
    return SYNONYMS.get(phrase)


def _lookup_words(words: list[str]) -> tuple[str, ...] | None:
    """The classes a run of words names as written, else with its last word singular."""
    return _lookup(" ".join(words)) or _lookup(" ".join([*words[:-1], singular(words[-1])]))


def exact_classes(name: str) -> tuple[str, ...] | None:
    """COCO classes by name, synonym, group or plural, or None (no embedding involved)."""
    words = normalise(name)
    if not words:
        return None
    for size in range(len(words), 0, -1):  # whole phrase first: "hot dog" before "dog"
        found = _lookup_words(words[-size:])
        if found is not None:
            return found
    head = words[-1]
    if head in NOT_DETECTABLE or singular(head) in NOT_DETECTABLE:
        return None
    for word in reversed(words[:-1]):  # "cars parked" -> "car"
        found = _lookup(word) or _lookup(singular(word))
        if found is not None:
            return found
    return None


def classes_named_in(text: str, longest: int = 3) -> set[str]:
    """The COCO classes a sentence names by class name, synonym, group word or plural ("dogs",
    "men", "wine glasses"); a longer name wins over the words inside it ("hot dog" is not a
    dog). Exact tables only, no embedding."""
    words = WORD_RE.findall(text.lower())
    found: set[str] = set()
    covered: set[int] = set()
    for size in range(longest, 0, -1):
        for start in range(len(words) - size + 1):
            span = range(start, start + size)
            if covered.intersection(span):
                continue
            classes = _lookup_words(words[start : start + size])
            if classes:
                found.update(classes)
                covered.update(span)
    return found


class CocoNameMapper:
    """Resolve names to COCO classes: exact tables first, MiniLM similarity as the fallback."""

    def __init__(
        self,
        embed: Callable[[list[str]], np.ndarray] | None = None,
        threshold: float = SIMILARITY_THRESHOLD,
        stand_in: str = "the COCO detector stand-in (SSD-MobileNet-v2, 80 COCO classes)",
    ) -> None:
        self._embed = embed
        self.threshold = threshold
        self.stand_in = stand_in
        self._vocabulary = sorted({*COCO_CLASSES, *(k for k, v in SYNONYMS.items() if len(v) == 1)})
        self._cache: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def _vectors(self, phrase: str) -> tuple[np.ndarray, np.ndarray]:
        """(phrase vector, vocabulary matrix); the vocabulary is disk-cached by the embedder."""
        if self._embed is not None:
            vectors = self._embed([phrase, *self._vocabulary])
            return vectors[0], vectors[1:]
        from vpagent.tools.offline.text_embed import shared_embedder

        embedder = shared_embedder()
        return embedder.encode([phrase])[0], embedder.encode_vocabulary(self._vocabulary)

    def nearest(self, name: str) -> tuple[str, float]:
        """The vocabulary entry closest to ``name`` in MiniLM space and its cosine similarity."""
        phrase = " ".join(normalise(name)) or name.strip().lower()
        vector, vocabulary = self._vectors(phrase)
        similarities = vocabulary @ vector
        best = int(np.argmax(similarities))
        return self._vocabulary[best], float(similarities[best])

    def resolve(self, name: str) -> tuple[str, ...]:
        """The COCO classes ``name`` refers to; raises CannotAnswer when none fits."""
        key = name.strip().lower()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        classes = exact_classes(key)
        if classes is None:
            words = normalise(key)
            if not words or words[-1] in NOT_DETECTABLE or singular(words[-1]) in NOT_DETECTABLE:
                raise self._refuse(name)
            entry, similarity = self.nearest(key)
            if similarity < self.threshold:
                raise self._refuse(name, f"closest class '{entry}' at similarity {similarity:.2f}")
            classes = _lookup(entry) or (entry,)
        with self._lock:
            self._cache[key] = classes
        return classes

    def _refuse(self, name: str, detail: str = "") -> CannotAnswer:
        extra = f" ({detail})" if detail else ""
        return CannotAnswer(
            f"cannot detect '{name}' with {self.stand_in}: it is not one of the 80 COCO classes "
            f"and no synonym maps to one{extra}. Detectable: {', '.join(COCO_CLASSES)}. An "
            "open-vocabulary detector (OWL-ViT, Grounding DINO, YOLO-World) on the 'hf' profile "
            "can find it."
        )


_shared: CocoNameMapper | None = None
_shared_lock = threading.Lock()


def shared_mapper() -> CocoNameMapper:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = CocoNameMapper()
        return _shared


def resolve(name: str) -> tuple[str, ...]:
    """Module-level shortcut: :meth:`CocoNameMapper.resolve` on the shared mapper."""
    return shared_mapper().resolve(name)
