"""The data card of an export: ``card.json`` (numbers) and ``README.md`` (HF dataset-card style)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from vpagent.distill.trace_records import ItemRecord
from vpagent.student.records import SFTRecord


def build_card(
    records: list[ItemRecord],
    splits: dict[str, list[SFTRecord]],
    split_of_item: dict[str, str],
    *,
    run_info: dict[str, Any],
    rationale_kinds: Counter[str],
    split_config: dict[str, Any],
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Counts per type and split, coverage per type, rejections, licences, teacher config;
    ``labels`` describes the answer-only records taken from human labels, if any."""
    per_type: dict[str, dict[str, Any]] = defaultdict(lambda: {"items": 0, "verified": 0})
    reasons: Counter[str] = Counter()
    licences: Counter[str] = Counter()
    licence_urls: dict[str, str] = {}
    sources: Counter[str] = Counter()
    for record in records:
        kind = per_type[str(record.item.get("type", "all"))]
        kind["items"] += 1
        kind["verified"] += record.status == "verified"
        if record.status != "verified":
            reasons[record.reason or "unknown"] += 1
        licence = str(record.item.get("license") or "unspecified")
        licences[licence] += 1
        if record.item.get("license_url"):
            licence_urls[licence] = str(record.item["license_url"])
        if record.item.get("source"):
            sources[str(record.item["source"])] += 1
    for kind in per_type.values():
        kind["coverage"] = round(kind["verified"] / kind["items"], 4) if kind["items"] else 0.0
    items_per_split: dict[str, Counter[str]] = defaultdict(Counter)
    for record in records:
        split = split_of_item.get(record.item_id)
        if split is not None:
            items_per_split[split][str(record.item.get("type", "all"))] += 1
    verified = sum(r.status == "verified" for r in records)
    guessed = sum(bool(r.verified_attempt and r.verified_attempt.unverified) for r in records)
    return {
        "items": len(records),
        "verified": verified,
        "verified_with_guesses": guessed,
        "coverage": round(verified / len(records), 4) if records else 0.0,
        "per_type": dict(sorted(per_type.items())),
        "rejections": dict(reasons.most_common()),
        "splits": {
            name: {
                "records": len(rows),
                "records_per_task": dict(Counter(r.task for r in rows)),
                "records_per_origin": dict(Counter(r.origin for r in rows)),
                "records_per_type": dict(sorted(Counter(r.type for r in rows).items())),
                "items_per_type": dict(sorted(items_per_split[name].items())),
                "images": len(split_config["images"].get(name, ())),
            }
            for name, rows in splits.items()
        },
        "split": {k: v for k, v in split_config.items() if k != "images"},
        "rationales": dict(rationale_kinds),
        "licenses": dict(licences.most_common()),
        "license_urls": licence_urls,
        "sources": dict(sources.most_common()),
        "teacher": {"k": run_info.get("k"), **run_info.get("teacher", {})},
        "traced_from": run_info.get("dataset"),
        "labels": labels,
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def card_markdown(card: dict[str, Any]) -> str:  # long: one page, written top to bottom
    """The README.md of an export: YAML header for the Hub, then the card's numbers."""
    licences = [name for name in card["licenses"] if name != "unspecified"]
    identifier = licences[0] if len(licences) == 1 and " " not in licences[0] else "other"
    present = [name for name, split in card["splits"].items() if split["records"]]
    header = [
        "---",
        f"license: {identifier.lower()}",
        "task_categories:",
        "- visual-question-answering",
        "configs:",
        "- config_name: default",
        "  data_files:",
        *(f"  - split: {name}\n    path: data/{name}.parquet" for name in present),
        "---",
    ]
    files = ", ".join(f'"{name}": "data/{name}.parquet"' for name in present)
    teacher = card["teacher"]
    per_type = _table(
        ["type", "items", "verified", "coverage"],
        [
            [t, v["items"], v["verified"], f"{v['coverage']:.1%}"]
            for t, v in card["per_type"].items()
        ]
        + [["**all**", card["items"], card["verified"], f"**{card['coverage']:.1%}**"]],
    )
    splits = _table(
        [
            "split",
            "images",
            "records",
            "rationale",
            "answer",
            "of which from labels",
            "traced items",
        ],
        [
            [
                name,
                s["images"],
                s["records"],
                s["records_per_task"].get("rationale", 0),
                s["records_per_task"].get("answer", 0),
                s["records_per_origin"].get("label", 0),
                sum(s["items_per_type"].values()),
            ]
            for name, s in card["splits"].items()
        ],
    )
    types = sorted({t for s in card["splits"].values() for t in s["records_per_type"]})
    per_split_type = _table(
        ["type", *card["splits"]],
        [[t, *(s["records_per_type"].get(t, 0) for s in card["splits"].values())] for t in types],
    )
    rejections = _table(["reason", "items"], [[r, n] for r, n in card["rejections"].items()])
    urls = card["license_urls"]
    licences_table = _table(
        ["license", "items", "url"], [[k, n, urls.get(k, "")] for k, n in card["licenses"].items()]
    )
    split = card["split"]
    body = f"""
# Verified visual-program rationales

Chain-of-thought training data distilled from a visual programming agent (vpagent), in the
manner of Visual Program Distillation: for each labelled question the teacher planned up to
k = {teacher.get("k")} programs (the first at temperature 0, the rest sampled), ran them in
vpagent's sandbox, and kept the first whose answer matched the label. Its tool calls were turned
into a short rationale by template ({_kinds(card["rationales"])}).

Each verified item gives two records (VPD's multitask mix): `rationale` (question -> rationale
ending in `Answer: X.`) and `answer` (question -> the short answer). Fields follow
`vpagent.student.records.SFTRecord`; `image` is relative to this folder.
{_labels_line(card.get("labels"))}
- teacher planner: `{teacher.get("planner", "?")}` (provider `{teacher.get("provider", "?")}`),
  run-time repairs per program: {teacher.get("max_repairs", "?")}; traced from
  `{card.get("traced_from")}`
- split by image (no image in both splits): validation fraction {split["val_fraction"]},
  seed {split["seed"]}; `validation_items.jsonl` holds every labelled item on a validation
  image (verified or not), for comparing teacher and student on unseen images

## Coverage per type

{per_type}

## Splits

{splits}

Records per type:

{per_split_type}

{card["verified_with_guesses"]} verified programs used a tool's low-confidence guess in at least
one step (marked `unverified` in the traces).

## Rejections (items without a verified program)

{rejections}

## Licences carried over

{licences_table}

## Load

```python
from datasets import load_dataset
data = load_dataset("parquet", data_files={{{files}}})
```

An empty split has no parquet file (`datasets` cannot load one); its JSONL file is empty.
"""
    return "\n".join(header) + "\n" + body


def _labels_line(labels: dict[str, Any] | None) -> str:
    if not labels:
        return ""
    return (
        f"\nAnswer-only records from human labels (`origin: label`): {labels['items']} labelled "
        f"items of `{labels['dataset']}` without a verified program (items whose image is "
        f"missing: {labels['image_missing']}). They teach answers, not reasoning.\n"
    )


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {n}" for kind, n in kinds.items()) or "none"
