"""What the configured tools can see, in a few lines for the planner's prompt.

Generated from the backends the settings name (and, for the offline pack, from its vocabulary
tables), so the planner picks a fallback before a program fails: a COCO-only ``find`` cannot
look for a tree, and the offline matcher checks colours, categories and worn items only.
"""

from __future__ import annotations

from vpagent.tools.config import ToolsConfig

# Classes whose synonyms the planner is shown as examples, and things shown as not findable.
SYNONYM_EXAMPLES = ("person", "dining table", "potted plant", "sports ball", "cell phone",
                    "handbag", "wine glass", "airplane")  # fmt: skip
NOT_FINDABLE_EXAMPLES = ("tree", "sky", "grass", "wall", "building", "shirt", "hat", "hair")
OPEN_VOCABULARY = {"owlvit", "grounding-dino", "yolo-world"}


def describe(tools: ToolsConfig) -> str:
    """Short text for the API spec: what find, verify_property, simple_query and
    compute_depth can do with the configured backends (empty lines omitted)."""
    lines = [
        _detector_line(tools.detector.backend),
        _matcher_line(tools.matcher.backend),
        _vqa_line(tools.vqa.backend),
        _depth_line(tools.depth.backend),
    ]
    return "\n".join(line for line in lines if line)


def _detector_line(backend: str) -> str:
    if backend in OPEN_VOCABULARY:
        return "find/locate: open vocabulary (any short noun phrase)."
    if backend != "ssd-coco":
        return (
            f"find/locate: the {backend} detector's own classes; a colour or clothing in the "
            "name ('black dog') picks the matching ones."
        )
    from vpagent.tools.offline.coco_names import CLASS_SYNONYMS, COCO_CLASSES, NOT_DETECTABLE

    def synonyms(cls: str) -> str:
        words = [w.strip() for w in CLASS_SYNONYMS[cls].split(",")]
        return f"{'/'.join(words[: 3 if cls == 'person' else 1])}->{cls}"

    examples = [w for w in NOT_FINDABLE_EXAMPLES if w in NOT_DETECTABLE]
    return (
        f"find/locate/exists/count detect ONLY these {len(COCO_CLASSES)} classes: "
        f"{', '.join(COCO_CLASSES)}. Synonyms map to them "
        f"({', '.join(synonyms(cls) for cls in SYNONYM_EXAMPLES)}), and animal, vehicle, food, "
        f"fruit, furniture to groups; find('face') uses a face detector. Others "
        f"({', '.join(examples)}, ...) cannot be found: use simple_query, or verify_property "
        "on the object they belong to. A colour or clothing in the name ('black dog', 'man "
        "in a red shirt') picks the matching ones."
    )


def _matcher_line(backend: str) -> str:
    if backend != "classifier-minilm":
        return "verify_property/best_text_match: any short description."
    from vpagent.tools.offline.colors import PALETTE
    from vpagent.tools.offline.parts import PART_WORDS

    parts = sorted({part for part in PART_WORDS.values()})
    return (
        f"verify_property checks colours ({', '.join(PALETTE)}), ImageNet categories "
        f"(breeds, kinds of things) and, on people, the colour of a part ({', '.join(parts)}) "
        "or a worn item (hat, sunglasses, tie, jersey, coat, jeans, shoes, ...); other "
        "properties get a low-confidence guess."
    )


def _vqa_line(backend: str) -> str:
    if backend == "scene-description-llm":
        return (
            "simple_query answers from a text description of the detections, colours and "
            "text, not from the pixels: prefer find and verify_property."
        )
    return ""


def _depth_line(backend: str) -> str:
    if backend == "vertical-position":
        return "compute_depth (in_front_of, behind) assumes level ground: lower = closer."
    return ""
