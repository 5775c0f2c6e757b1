"""Reports that hold up: bootstrap intervals, and two runs compared item by item with an exact
McNemar test (`vpagent eval compare`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vpagent.cli import app
from vpagent.evaluation.compare import CompareError, compare_results, read_results
from vpagent.evaluation.stats import interval, mcnemar_p


def _results(path: Path, scores: dict[str, float], kind: str = "count") -> Path:
    rows = [
        {"id": item_id, "type": "exist" if item_id.startswith("e") else kind,
         "question": "q", "prediction": "x", "expected": ["x"], "score": score}
        for item_id, score in scores.items()
    ]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_interval_holds_the_mean_and_narrows_with_more_items() -> None:
    few = interval([1, 0] * 10)
    many = interval([1, 0] * 500)
    assert few[0] < 0.5 < few[1] and many[0] < 0.5 < many[1]
    assert many[1] - many[0] < few[1] - few[0]
    assert interval([1, 0] * 10) == few  # seeded: the same report twice
    assert interval([]) == (0.0, 0.0) and interval([1.0, 1.0]) == (1.0, 1.0)


def test_mcnemar_is_exact_on_the_discordant_items() -> None:
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(0, 6) == pytest.approx(2 * 0.5**6)  # 0.03125
    assert mcnemar_p(1, 9) == pytest.approx(2 * (1 + 10) / 2**10)


def test_compare_counts_flips_per_type_and_overall(tmp_path: Path) -> None:
    a = _results(tmp_path / "a.jsonl", {"c1": 1, "c2": 1, "c3": 0, "c4": 0, "e1": 1, "gone": 1})
    b = _results(tmp_path / "b.jsonl", {"c1": 1, "c2": 0, "c3": 1, "c4": 1, "e1": 0, "new": 0})
    comparison = compare_results(read_results(a), read_results(b))
    count = comparison.per_type["count"]
    assert (count.n, count.only_a, count.only_b) == (4, ["c2"], ["c3", "c4"])
    assert (count.accuracy_a, count.accuracy_b) == (0.5, 0.75)
    assert comparison.overall.n == 5 and comparison.overall.only_a == ["c2", "e1"]
    assert comparison.overall.p_value == pytest.approx(mcnemar_p(2, 2))
    assert (comparison.missing_in_b, comparison.missing_in_a) == (["gone"], ["new"])


def test_a_partial_score_is_not_a_right_answer(tmp_path: Path) -> None:
    a = _results(tmp_path / "a.jsonl", {"v1": 0.6, "v2": 1.0})
    b = _results(tmp_path / "b.jsonl", {"v1": 1.0, "v2": 0.9})
    overall = compare_results(read_results(a), read_results(b)).overall
    assert (overall.only_a, overall.only_b) == (["v2"], ["v1"])


def test_the_cli_compares_and_names_a_bad_file(tmp_path: Path) -> None:
    a = _results(tmp_path / "a.jsonl", {"c1": 1, "c2": 0})
    b = _results(tmp_path / "b.jsonl", {"c1": 0, "c2": 0})
    runner = CliRunner()
    done = runner.invoke(app, ["eval", "compare", str(a), str(b), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["overall"]["only_a"] == ["c1"]
    shown = runner.invoke(app, ["eval", "compare", str(a), str(b), "--show"])
    assert "right in A only: c1" in shown.output
    (tmp_path / "bad.jsonl").write_text('{"id": "c1"}\n')
    bad = runner.invoke(app, ["eval", "compare", str(a), str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 2
    assert "bad.jsonl: not a vpagent eval results file" in " ".join(bad.output.split())
    with pytest.raises(CompareError, match="cannot read"):
        read_results(tmp_path / "missing.jsonl")


def test_eval_takes_its_options_before_or_after_the_dataset(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.jsonl")
    for args in (["eval", missing, "--limit", "1"], ["eval", "--limit", "1", "--json", missing]):
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 2 and "no dataset at" in done.output, (args, done.output)
