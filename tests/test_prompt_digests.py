"""scripts/prompt_digests.py: one digest of the planner's whole prompt per question, equal
exactly when the planner would be asked the same thing (the check behind a before/after)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[1]


def digests(dataset: Path, config: Path | None = None) -> dict[str, str]:
    command = [sys.executable, str(REPO / "scripts" / "prompt_digests.py"), str(dataset)]
    if config is not None:
        command += ["--config", str(config)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    return dict(line.split() for line in done.stdout.splitlines())


def test_digests_follow_the_prompt_not_the_run(tmp_path: Path) -> None:
    dataset = tmp_path / "questions.jsonl"
    questions = ["How many dogs are there?", "How many dogs are there?", "Is the cup red?"]
    dataset.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "image": "x.jpg", "question": q, "answer": "1"}) + "\n"
            for i, q in enumerate(questions)
        )
    )
    first = digests(dataset)
    assert list(first) == ["q0", "q1", "q2"]
    assert first["q0"] == first["q1"] != first["q2"]  # same question, same prompt
    assert digests(dataset) == first  # nothing in a prompt depends on the run
    fewer = tmp_path / "vpagent.toml"
    fewer.write_text("[agent]\nexamples_per_prompt = 1\n")
    assert digests(dataset, fewer)["q0"] != first["q0"]  # another prompt, another digest
