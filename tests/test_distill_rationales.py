"""Rationales by template from tool calls, and the LLM rewrite that must keep the answer."""

from __future__ import annotations

from typing import Any

import pytest

from vpagent.distill.rationales import plural, rationales, template_rationale
from vpagent.distill.trace_records import ItemRecord, TracedAttempt
from vpagent.student.records import parse_answer

WHOLE = [0, 0, 640, 480]


def find(index: int, name: str, boxes: list[list[float]], box: list[float] = WHOLE) -> dict:
    hits = [{"box": b, "score": 0.9, "label": name} for b in boxes]
    return {"index": index, "tool": "find", "args": {"name": name, "box": box}, "result": hits}


def record(question: str, answer: str, steps: list[dict[str, Any]], **item: Any) -> ItemRecord:
    attempt = TracedAttempt(sample=0, program="def execute_command(image): ...", answer=answer,
                      correct=True, steps=steps)  # fmt: skip
    return ItemRecord(
        item_id="x",
        status="verified",
        item={"id": "x", "image": "/i.jpg", "question": question, "answers": [answer], **item},
        question=question,
        image_sha256="ab" * 32,
        width=640,
        height=480,
        attempts=[attempt],
        verified=0,
    )


def test_spatial_question_names_centres_and_the_relation() -> None:
    steps = [find(0, "cup", [[100, 100, 140, 160]]), find(1, "bowl", [[280, 90, 320, 150]])]
    text = template_rationale(record("Is the cup to the left of the bowl?", "yes", steps))
    assert text == (
        "I look for cups and find 1, centred at (120, 130). "
        "I look for bowls and find 1, centred at (300, 120). "
        "The cup's centre is at x=120, the bowl's at x=300, so the cup is left of the bowl."
    )


def test_repeated_checks_are_summed_up_and_numbers_rounded() -> None:
    cups = [[10.4, 10, 50, 50], [100, 10, 140, 50], [200, 10, 240, 50], [300, 10, 340, 50]]
    steps = [find(0, "cup", cups)]
    for i, red in enumerate([True, False, True, False], 1):
        args = {"name": "cup", "property": "red", "box": cups[i - 1]}
        steps.append({"index": i, "tool": "verify_property", "args": args, "result": red})
    steps.append({"index": 5, "tool": "compute_depth", "args": {"box": WHOLE}, "result": 0.4567})
    text = template_rationale(record("How many red cups are there?", "2", steps))
    assert text.startswith("I look for cups and find 4. I check 4 cups for 'red': 2 are.")
    assert text.endswith("Its median depth is 0.46.")


def test_other_tools_crops_failed_calls_and_empty_finds() -> None:
    steps = [
        find(0, "sign", [], box=[10, 10, 100, 100]),
        {"index": 1, "tool": "ocr", "args": {"box": WHOLE}, "result": "STOP"},
        {"index": 2, "tool": "simple_query", "args": {"question": "what is it?", "box": WHOLE},
         "result": "a sign"},
        {"index": 3, "tool": "find", "args": {"name": "dog", "box": WHOLE}, "result": None,
         "error": "ValueError: cannot detect 'dog'"},
        {"index": 4, "tool": "best_text_match", "args": {"options": ["day", "night"]},
         "result": "night"},
    ]  # fmt: skip
    text = template_rationale(record("What does the sign say?", "stop", steps))
    assert text == (
        "I look for signs in that region and find none. I read the text 'STOP'. "
        "Asked 'what is it?', the image answers 'a sign'. Of day, night, the best match is night."
    )


def test_rationale_always_ends_in_the_label_and_soft_labels_use_the_program_answer() -> None:
    steps = [find(0, "dog", [[0, 0, 10, 10], [20, 0, 30, 10]])]
    exact = record("How many dogs?", "2", steps)
    soft = record("How many dogs?", "Two.", steps, soft=True)
    soft.item["answers"] = ["2", "two", "two"]
    (_, text, kind), (_, soft_text, _) = rationales([exact, soft])
    assert kind == "template" and text.endswith("Answer: 2.") and parse_answer(text) == "2"
    assert soft_text.endswith("Answer: two.")


@pytest.mark.parametrize(
    ("reply", "kind", "ending"),
    [
        ("There are two dogs here, one at each side. Answer: 2.", "rewritten", "side. Answer: 2."),
        ("There are three dogs. Answer: 3", "template-kept", "(25, 5). Answer: 2."),
        ("", "template-kept", "(25, 5). Answer: 2."),
    ],
)
def test_rewrite_is_kept_only_when_it_ends_in_the_answer(
    reply: str, kind: str, ending: str
) -> None:
    prompts: list[str] = []

    def rewrite(prompt: str) -> str:
        prompts.append(prompt)
        return reply

    steps = [find(0, "dog", [[0, 0, 10, 10], [20, 0, 30, 10]])]
    ((_, text, got),) = rationales([record("How many dogs?", "2", steps)], rewrite)
    assert got == kind and text.endswith(ending) and text.count("Answer:") == 1
    assert 'end with exactly "Answer: 2."' in prompts[0] and "find 2" in prompts[0]


def test_plural() -> None:
    words = ["cup", "skis", "box", "bench", "sheep", "pony", "toy", "wine glass", "person"]
    assert [plural(w, 2) for w in words] == [
        "cups", "skis", "boxes", "benches", "sheep", "ponies", "toys", "wine glasses", "people",
    ]  # fmt: skip
    assert plural("cup", 1) == "cup"
