"""`vpagent distill examples`: verified programs -> a planner example bank (TOML).

Same format as ``vpagent/planner/examples.toml``. Programs are deduplicated (by their
normalised AST, so comments and layout do not count) and so are near-identical questions;
images of the given eval datasets are left out, so eval and the planner's examples never share
an image; each remaining program is checked again: the sandbox's static check, then a run on
its image that must still give the label.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

from vpagent.distill.trace_item import VERIFY_SCORE
from vpagent.distill.trace_records import ItemRecord
from vpagent.distill.traces import load_item_records
from vpagent.evaluation.datasets import load_dataset
from vpagent.evaluation.evaluate import score_item
from vpagent.llm.packs import sha256_file
from vpagent.planner import Example, load_examples
from vpagent.pool.job import AgentFactory
from vpagent.pool.jsonl import write_atomic
from vpagent.pool.local import AgentBuildFailed
from vpagent.sandbox.policy import ProgramRejected, check_program

NEAR_IDENTICAL = 0.9  # question similarity (difflib ratio of normalised text) counted as a repeat

EVAL_IMAGE = "eval_image"
DUPLICATE_PROGRAM = "duplicate_program"
DUPLICATE_QUESTION = "duplicate_question"
STATIC_CHECK = "static_check"
RERUN_MISMATCH = "rerun_mismatch"


@dataclass
class BankSummary:
    kept: list[Example] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def normalise_program(program: str) -> str:
    """The program without comments, blank lines or layout differences."""
    try:
        return ast.unparse(ast.parse(program))
    except SyntaxError:
        return program.strip()


def normalise_question(question: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", question.lower()))


def eval_image_hashes(datasets: Sequence[Path]) -> set[str]:
    """Content hashes of every readable image file in the given datasets."""
    hashes = set()
    for dataset in datasets:
        for item in load_dataset(dataset):
            if Path(item.image).is_file():
                hashes.add(sha256_file(Path(item.image)))
    return hashes


def _candidates(
    records: list[ItemRecord], excluded: set[str], summary: BankSummary
) -> list[ItemRecord]:
    programs: set[str] = set()
    questions: list[str] = []
    kept = []
    for record in records:
        attempt = record.verified_attempt
        if attempt is None or attempt.program is None:
            continue
        question = normalise_question(record.item["question"])
        if record.image_sha256 in excluded:
            summary.dropped[EVAL_IMAGE] += 1
        elif normalise_program(attempt.program) in programs:
            summary.dropped[DUPLICATE_PROGRAM] += 1
        elif any(SequenceMatcher(None, question, q).ratio() >= NEAR_IDENTICAL for q in questions):
            summary.dropped[DUPLICATE_QUESTION] += 1
        else:
            programs.add(normalise_program(attempt.program))
            questions.append(question)
            kept.append(record)
    return kept


def build_bank(
    traces_dir: Path, factory: AgentFactory, *, exclude: Sequence[Path] = ()
) -> BankSummary:
    """The example bank from the verified programs in ``traces_dir`` (not yet written)."""
    summary = BankSummary()
    candidates = _candidates(load_item_records(traces_dir), eval_image_hashes(exclude), summary)
    if not candidates:
        return summary
    try:
        agent = factory()
    except Exception as error:  # missing model pack, bad configuration
        raise AgentBuildFailed(f"cannot start the agent: {error}") from None
    with agent:
        for record in candidates:
            program = _program(record)
            try:
                check_program(program)
            except ProgramRejected:
                summary.dropped[STATIC_CHECK] += 1
                continue
            item = record.eval_item
            execution, _ = agent.runner.run(program, item.image, question=record.question)
            if not execution.ok or score_item(item, execution.answer) < VERIFY_SCORE:
                summary.dropped[RERUN_MISMATCH] += 1
                continue
            summary.kept.append(
                Example(kind=item.type, question=record.question, program=program.strip() + "\n")
            )
    return summary


def _program(record: ItemRecord) -> str:
    attempt = record.verified_attempt
    assert attempt is not None and attempt.program is not None
    return attempt.program


def _toml_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _toml_program(program: str) -> str:
    if "'''" in program:
        return _toml_string(program)
    return f"'''\n{program.rstrip()}\n'''"


def write_bank(examples: Sequence[Example], path: Path, *, origin: str) -> None:
    """Write ``examples`` as ``[[example]]`` tables and check the file loads back the same."""
    parts = [
        f"# Planner examples from verified programs ({origin}); "
        "each re-run in the sandbox gave its label.\n"
    ]
    for example in examples:
        parts.append(
            "\n[[example]]\n"
            f"kind = {_toml_string(example.kind)}\n"
            f"question = {_toml_string(example.question)}\n"
            f"program = {_toml_program(example.program)}\n"
        )
    write_atomic(path, "".join(parts))
    if examples and load_examples(path) != list(examples):
        raise RuntimeError(f"{path} does not read back as written")  # a bug in the writer
