"""Which reading of the student's token probabilities separates right from wrong (issue 32).

    .venv/bin/python benchmarks/bench_confidence_measures.py --items ITEMS.jsonl \
        --students FOLDER [FOLDER ...] --out results/NAME.json

The student's confidence is the geometric mean of its reply's token probabilities
(``Student.generate``). This script answers every item again with each student, greedy as in
``distill eval``, keeps every token's probability and the first step's whole distribution, and
reports the AUROC (confidence against right or wrong) of several readings: the geometric mean,
the first token's probability, the least token probability, the product, the product with the
end token, the first step's top-1 minus top-2 margin and its negative entropy. The students'
runs are pooled and split by photo as ``distill calibrate`` splits them (``--fraction``,
``--seed``): a reading is chosen on the calibration half and judged on the other.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from vpagent.answers import with_choices
from vpagent.distill.student.calibrate import split_by_photo
from vpagent.distill.student.confidence import auroc
from vpagent.distill.student.evaluate import ItemComparison, Side, load_items
from vpagent.evaluation.evaluate import score_item
from vpagent.student.records import parse_answer, user_prompt
from vpagent.student.students import _until_end, load_student

FLOOR = 1e-12


def readings(
    probabilities: list[float], end: float, margin: float, entropy: float
) -> dict[str, float]:
    """Every confidence reading of one reply (``probabilities``: its tokens before the end)."""
    kept = probabilities or [FLOOR]
    logs = [math.log(max(p, FLOOR)) for p in kept]
    return {
        "geometric_mean": math.exp(sum(logs) / len(logs)),
        "first_token": kept[0],
        "least_token": min(kept),
        "product": math.exp(sum(logs)),
        "product_with_end": math.exp(sum(logs)) * end,
        "first_margin": margin,
        "first_negative_entropy": -entropy,
    }


@torch.inference_mode()
def answer_all(folder: Path, items: list[Any]) -> list[tuple[ItemComparison, dict[str, float]]]:
    """(the item as ``distill eval`` rows it, its readings) for every item."""
    student = load_student(folder)
    rows = []
    for item in items:
        prompt = user_prompt(with_choices(item.question, item.choices), "answer")
        inputs = student._prompt_inputs([Path(item.image)], [prompt])
        output = student.model.generate(
            **inputs, max_new_tokens=16, do_sample=False, output_scores=True,
            return_dict_in_generate=True, pad_token_id=student.pad_token_id,
        )  # fmt: skip
        reply = output.sequences[0, inputs["input_ids"].shape[1] :]
        tokens = reply.tolist()
        steps = [torch.softmax(scores[0].float(), -1) for scores in output.scores]
        probabilities = [float(step[token]) for step, token in zip(steps, tokens, strict=True)]
        keep = _until_end(reply, student.end_token_ids)
        top = torch.topk(steps[0], 2).values.tolist()
        entropy = float(-(steps[0] * steps[0].clamp_min(FLOOR).log()).sum())
        answer = parse_answer(student.decode(reply[:keep]))
        row = ItemComparison(
            id=item.id, type=item.type, question=item.question, expected=[], image=str(item.image),
            student=Side(prediction=answer or None, score=score_item(item, answer or None),
                         seconds=0.0),
        )  # fmt: skip
        end = probabilities[keep] if keep < len(probabilities) else 1.0
        rows.append((row, readings(probabilities[:keep], end, top[0] - top[1], entropy)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=Path, required=True, help="validation_items.jsonl")
    parser.add_argument("--students", type=Path, nargs="+", required=True)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    items = load_items(args.items)
    halves: dict[str, list[tuple[bool, dict[str, float]]]] = {"calibration": [], "report": []}
    for folder in args.students:
        answered = answer_all(folder, items)
        by_id = {row.id: measures for row, measures in answered}
        calibration, report = split_by_photo([row for row, _ in answered], args.fraction, args.seed)
        for name, half in (("calibration", calibration), ("report", report)):
            halves[name] += [(row.student.score >= 0.5, by_id[row.id]) for row in half]
    result: dict[str, Any] = {"students": [str(f) for f in args.students], "auroc": {}}
    for name, pairs in halves.items():
        right = [r for r, _ in pairs]
        result["auroc"][name] = {
            key: auroc([m[key] for _, m in pairs], right) for key in pairs[0][1]
        } | {"n": len(pairs), "accuracy": sum(right) / len(right)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["auroc"], indent=2))


if __name__ == "__main__":
    main()
