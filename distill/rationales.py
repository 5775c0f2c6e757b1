"""Verified traces -> short chains of thought, by template from the tool calls and their outputs.

One small template per tool; repeated calls of the same kind (a property checked on each of
five cups) are summed up in one sentence; numbers are rounded; the text always ends in the
verified answer (:func:`vpagent.student.records.rationale_target`). ``--rewrite`` asks the
chat model for a more natural wording and keeps it only if it still ends in that answer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

from vpagent.answers import normalize_answer
from vpagent.distill.trace_records import ItemRecord
from vpagent.distill.traces import load_item_records
from vpagent.pool.jsonl import AppendWriter, read_records
from vpagent.student.records import parse_answer, rationale_target

RATIONALES_FILE = "rationales.jsonl"
MAX_LISTED = 3  # positions spelled out for at most this many found objects
MAX_TEXT = 80  # characters of a tool's text output quoted in a rationale
SIDE_WORDS = {"left": 0, "right": 0, "above": 1, "below": 1, "top": 1, "bottom": 1}

REWRITE_PROMPT = """Rewrite this step-by-step reasoning about an image as two or three short, \
natural sentences. Keep every number and fact, add nothing, and end with exactly \
"Answer: {answer}."

Reasoning: {rationale}"""

Step = dict[str, Any]


IRREGULAR = {
    "person": "people", "man": "men", "woman": "women", "child": "children", "mouse": "mice",
    "sheep": "sheep", "knife": "knives", "shelf": "shelves", "leaf": "leaves", "foot": "feet",
}  # fmt: skip


def plural(name: str, n: int) -> str:
    """``name`` as a plural noun when ``n`` != 1 (the last word of a compound is inflected)."""
    head, _, last = name.rpartition(" ")
    prefix = f"{head} " if head else ""
    if n == 1:
        return name
    if last in IRREGULAR:
        return prefix + IRREGULAR[last]
    if last.endswith(("ss", "sh", "ch", "x", "z")):
        return f"{name}es"
    if last.endswith("s"):
        return name
    if last.endswith("y") and last[-2:-1] not in "aeiou":
        return f"{name[:-1]}ies"
    return f"{name}s"


def _centre(box: list[float]) -> tuple[int, int]:
    return round((box[0] + box[2]) / 2), round((box[1] + box[3]) / 2)


def _is_whole(box: Any, width: int | None, height: int | None) -> bool:
    if not isinstance(box, list | tuple) or len(box) != 4 or width is None or height is None:
        return True
    return box[0] <= 1 and box[1] <= 1 and box[2] >= width - 1 and box[3] >= height - 1


def _quote(text: Any) -> str:
    words = " ".join(str(text).split())
    return words if len(words) <= MAX_TEXT else words[: MAX_TEXT - 3].rstrip() + "..."


def _find(steps: list[Step], whole: bool) -> str:
    name = str(steps[0]["args"].get("name", "object"))
    where = "" if whole else " in that region"
    sentences = []
    for step in steps:
        hits = step.get("result") or []
        if not hits:
            sentences.append(f"I look for {plural(name, 2)}{where} and find none.")
            continue
        found = f"I look for {plural(name, 2)}{where} and find {len(hits)}"
        if len(hits) <= MAX_LISTED:
            centres = [_centre(hit["box"]) for hit in hits]
            at = ", ".join(f"({x}, {y})" for x, y in centres)
            found += f", centred at {at}"
        sentences.append(found + ".")
    return " ".join(sentences)


def _verify(steps: list[Step]) -> str:
    name = str(steps[0]["args"].get("name", "object"))
    prop = str(steps[0]["args"].get("property", ""))
    yes = sum(bool(s.get("result")) for s in steps)
    if len(steps) == 1:
        return f"I check whether the {name} is {prop}: {'yes' if yes else 'no'}."
    return (
        f"I check {len(steps)} {plural(name, 2)} for '{prop}': {yes} {'is' if yes == 1 else 'are'}."
    )


def _best_match(steps: list[Step]) -> str:
    options = ", ".join(str(o) for o in steps[0]["args"].get("options", []))
    picks = [str(s.get("result")) for s in steps]
    if len(steps) == 1:
        return f"Of {options}, the best match is {picks[0]}."
    return f"Of {options}, the best matches are {', '.join(picks)}."


def _one(step: Step) -> str:
    tool, args, result = step["tool"], step.get("args", {}), step.get("result")
    if tool == "simple_query":
        return f"Asked '{_quote(args.get('question', ''))}', the image answers '{_quote(result)}'."
    if tool == "caption":
        return f"It shows {_quote(result)}."
    if tool == "ocr":
        return f"I read the text '{_quote(result)}'." if str(result).strip() else "I find no text."
    if tool == "compute_depth":
        return f"Its median depth is {float(result):.2f}."
    if tool == "segment":
        return f"Its mask fills {float(result):.0%} of its box."
    if tool == "llm_query":
        return f"I recall that {_quote(args.get('question', ''))} -> {_quote(result)}."
    return f"I use {tool}."


def _relation(question: str, finds: list[Step]) -> str:
    """Where a spatial question compares two found objects: their centres, and what follows."""
    words = set(re.findall(r"[a-z]+", question.lower()))
    axes = {SIDE_WORDS[w] for w in words if w in SIDE_WORDS}
    named = [s for s in finds if s.get("result")]
    if len(axes) != 1 or len(named) < 2:
        return ""
    axis = axes.pop()
    first, second = named[0], named[1]
    a, b = str(first["args"].get("name")), str(second["args"].get("name"))
    if a == b:
        return ""
    pa = _centre(first["result"][0]["box"])[axis]
    pb = _centre(second["result"][0]["box"])[axis]
    coordinate = "xy"[axis]
    if pa == pb:
        relation = "level with" if axis else "in line with"
    elif axis == 0:
        relation = "left of" if pa < pb else "right of"
    else:
        relation = "above" if pa < pb else "below"
    return (
        f"The {a}'s centre is at {coordinate}={pa}, the {b}'s at {coordinate}={pb}, "
        f"so the {a} is {relation} the {b}."
    )


def _key(step: Step) -> tuple[Any, ...]:
    args = step.get("args", {})
    if step["tool"] == "find":
        return ("find", args.get("name"))
    if step["tool"] in ("verify_property", "best_text_match"):
        return (step["tool"], args.get("name"), args.get("property"), str(args.get("options")))
    return (step["tool"], step["index"])


def template_rationale(record: ItemRecord) -> str:
    """The chain of thought for a verified item's trace (without the final answer)."""
    attempt = record.verified_attempt
    if attempt is None:
        raise ValueError(f"item {record.item_id} has no verified program")
    steps = [s.model_dump(mode="json") for s in attempt.steps if s.ok]
    sentences: list[str] = []
    for key, group in groupby(steps, key=_key):
        calls = list(group)
        if key[0] == "find":
            box = calls[0]["args"].get("box")
            sentences.append(_find(calls, _is_whole(box, record.width, record.height)))
        elif key[0] == "verify_property":
            sentences.append(_verify(calls))
        elif key[0] == "best_text_match":
            sentences.append(_best_match(calls))
        else:
            sentences.append(_one(calls[0]))
    relation = _relation(record.item["question"], [s for s in steps if s["tool"] == "find"])
    if relation:
        sentences.append(relation)
    if not sentences:
        sentences.append("The answer follows from the question without looking anything up.")
    return " ".join(sentences)


def target_answer(record: ItemRecord) -> str:
    """The answer a student learns: the label (its first accepted form) or, for soft VQA
    labels, the verified program's own answer (which enough annotators gave)."""
    attempt = record.verified_attempt
    if attempt is None:
        raise ValueError(f"item {record.item_id} has no verified program")
    item = record.eval_item
    if item.soft:
        return normalize_answer(attempt.answer or "")
    return item.answers[0]


def write_rationales(out_dir: Path, rewrite: Callable[[str], str] | None = None) -> Counter[str]:
    """Append a rationale per verified item not yet in ``DIR/rationales.jsonl``; resumable.

    Returns how many were written of each kind (template, rewritten, template-kept).
    """
    path = out_dir / RATIONALES_FILE
    done = {row["item_id"] for row in read_records(path)}
    pending = [r for r in load_item_records(out_dir) if r.item_id not in done]
    counts: Counter[str] = Counter()
    with AppendWriter(path) as writer:
        for record, text, kind in rationales(pending, rewrite):
            writer.write({"item_id": record.item_id, "rationale": text, "kind": kind})
            counts[kind] += 1
    return counts


def load_rationales(out_dir: Path) -> dict[str, str]:
    """item id -> rationale text, from ``DIR/rationales.jsonl`` (empty if it was never made)."""
    return {row["item_id"]: row["rationale"] for row in read_records(out_dir / RATIONALES_FILE)}


def rationales(
    records: list[ItemRecord], rewrite: Callable[[str], str] | None = None
) -> Iterator[tuple[ItemRecord, str, str]]:
    """(record, rationale text ending in the answer, "template" | "rewritten") per verified item.

    ``rewrite`` (prompt -> reply) is the chat model; a reply that does not end in the verified
    answer is dropped in favour of the template (reported as "template-kept").
    """
    for record in records:
        if record.status != "verified":
            continue
        answer = target_answer(record)
        text = rationale_target(template_rationale(record), answer)
        if rewrite is None:
            yield record, text, "template"
            continue
        reply = rewrite(REWRITE_PROMPT.format(answer=answer, rationale=text)).strip()
        if reply and normalize_answer(parse_answer(reply)) == normalize_answer(answer):
            yield record, rationale_target(strip_answer(reply), answer), "rewritten"
        else:
            yield record, text, "template-kept"


def strip_answer(text: str) -> str:
    """The text before its last ``Answer:`` (so the answer is appended exactly once)."""
    cut = list(re.finditer(r"answer\s*:", text, re.IGNORECASE))
    return text[: cut[-1].start()].strip() if cut else text.strip()
