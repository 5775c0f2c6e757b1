"""GQA-style labelled questions from COCO instance annotations, in three parts:

- :mod:`~vpagent.distill.questions.rules`: what a picture's annotations allow (countable,
  unique, clearly related, clearly bigger) and how categories are worded;
- :mod:`~vpagent.distill.questions.families`: one small function per question family;
- :mod:`~vpagent.distill.questions.files`: pictures checked, questions picked and balanced,
  the JSONL file written (:func:`generate`).
"""

from vpagent.distill.questions.families import (
    ALL_FAMILIES,
    EXTRA_FAMILIES,
    FAMILIES,
    FAMILY_FUNCTIONS,
    count_questions,
    resolve_types,
)
from vpagent.distill.questions.files import (
    Report,
    balance,
    check_image,
    find_images_dir,
    generate,
    image_reference,
    pick,
    question_rows,
    write_jsonl,
)
from vpagent.distill.questions.rules import (
    Question,
    QuestionError,
    Rules,
    Scene,
    Thing,
    build_scene,
    indefinite,
    is_clear,
    plural,
    there_is,
)

__all__ = [
    "ALL_FAMILIES",
    "EXTRA_FAMILIES",
    "FAMILIES",
    "FAMILY_FUNCTIONS",
    "Question",
    "QuestionError",
    "Report",
    "Rules",
    "Scene",
    "Thing",
    "balance",
    "build_scene",
    "check_image",
    "count_questions",
    "find_images_dir",
    "generate",
    "image_reference",
    "indefinite",
    "is_clear",
    "pick",
    "plural",
    "question_rows",
    "resolve_types",
    "there_is",
    "write_jsonl",
]
