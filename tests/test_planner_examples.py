"""Every example in the bank passes the static check and runs in the sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from vpagent.planner import load_examples
from vpagent.sandbox.executor import SandboxExecutor
from vpagent.sandbox.limits import SandboxLimits
from vpagent.sandbox.policy import check_program

EXAMPLES = load_examples()
IMAGE = {"id": "img", "width": 640, "height": 480}


def stub_tools(tool: str, args: dict[str, Any]) -> Any:
    """Plausible answers to every tool, so each example's control flow runs to the end."""
    if tool == "find":
        return [
            {"box": [40, 60, 200, 400], "score": 0.9, "label": args["name"]},
            {"box": [300, 80, 500, 420], "score": 0.8, "label": args["name"]},
        ]
    answers = {
        "verify_property": True,
        "simple_query": "a stick",
        "caption": "two dogs on grass",
        "ocr": "MADRID 12",
        "compute_depth": 3.5,
        "segment": 0.4,
        "llm_query": "Spain",
        "marks": [
            {"box": [100, 100, 140, 140], "label": "A", "score": 1.0, "kind": "circle"},
            {"box": [400, 300, 412, 312], "label": "B", "score": 1.0, "kind": "point"},
            {"box": [200, 50, 260, 120], "label": "1", "score": 1.0, "kind": "box"},
            {"box": [300, 200, 340, 260], "label": "2", "score": 1.0, "kind": "box"},
        ],
        "object_at": {"box": [40, 60, 200, 400], "score": 0.9, "label": "dog"},
        "point_depth": 0.4,
    }
    if tool == "best_text_match":
        return args["options"][0]
    return answers[tool]


def test_the_bank_is_large_and_diverse() -> None:
    assert len(EXAMPLES) >= 40
    kinds = {e.kind for e in EXAMPLES}
    assert {
        "count",
        "exist",
        "attribute",
        "spatial",
        "compare",
        "ocr",
        "knowledge",
        "multi-hop",
    } <= kinds
    assert len({e.question for e in EXAMPLES}) == len(EXAMPLES)


@pytest.fixture(scope="module")
def executor():  # type: ignore[no-untyped-def]
    with SandboxExecutor(SandboxLimits(cpu_seconds=2, wall_seconds=10), pool_size=2) as ex:
        yield ex


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.question[:40] for e in EXAMPLES])
def test_example_runs(example, executor) -> None:  # type: ignore[no-untyped-def]
    check_program(example.program)
    result = executor.run(example.program, IMAGE, stub_tools)
    assert result.ok, f"{example.question}: {result.feedback()}"
    assert result.answer and len(result.answer) < 200
