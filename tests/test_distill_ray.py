"""`distill traces --ray`: the same records as the local path, on a loopback-only local Ray."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.agents import comparable, fake_agent, spots_png, write_dataset
from vpagent.distill.traces import generate_traces
from vpagent.evaluation.datasets import load_dataset
from vpagent.evaluation.run_header import run_header
from vpagent.pool.dataset_run import Backend

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    from vpagent.ray_cluster import start_ray, stop_ray

    start_ray(num_cpus=2)
    yield
    stop_ray()


@pytest.mark.slow  # starts Ray and two actors: ~20 s idle, a minute on a busy machine
def test_ray_path_gives_the_same_records_as_the_local_path(local_ray: None, tmp_path: Path) -> None:
    for spots in (1, 2):
        spots_png(tmp_path / f"{spots}.png", spots)
    ask = "How many spots?"
    rows = [
        {"id": "one", "image": "1.png", "question": ask, "answer": "1", "type": "count"},
        {"id": "two", "image": "2.png", "question": ask, "answer": "2", "type": "count"},
        {"id": "miss", "image": "2.png", "question": ask, "answer": "4", "type": "count"},
        {"id": "gone", "image": "0.png", "question": ask, "answer": "4", "type": "count"},
    ]
    items = load_dataset(write_dataset(tmp_path, rows))
    generate_traces(items, tmp_path / "local", fake_agent, k=2, progress=False)
    on_ray = Backend(2, use_ray=True)
    whole = run_header("traces", items)  # the whole dataset's: the longer run resumes the shorter
    summary = generate_traces(
        items[:2],
        tmp_path / "ray",
        fake_agent,
        k=2,
        backend=on_ray,
        header=whole,
        progress=False,
    )
    assert summary.traced == 2
    resumed = generate_traces(
        items, tmp_path / "ray", fake_agent, k=2, backend=on_ray, header=whole, progress=False
    )
    assert resumed.skipped == 2 and resumed.traced == 2
    assert comparable(tmp_path / "ray") == comparable(tmp_path / "local")
    assert ray.is_initialized() and not ray.cluster_resources().get("GPU")


@pytest.mark.slow  # two Ray actors answer; shares the module's local Ray
def test_eval_on_ray_gives_the_serial_answers(local_ray: None, tmp_path: Path) -> None:
    from vpagent.evaluation.evaluate import ItemResult, evaluate
    from vpagent.pool.dataset_run import read_run

    for spots in (1, 2, 3):
        spots_png(tmp_path / f"{spots}.png", spots)
    rows = [{"id": f"q{i}", "image": f"{1 + i % 3}.png", "question": "How many spots?",
             "answer": str(1 + i % 3), "type": "count"} for i in range(5)]  # fmt: skip
    items = load_dataset(write_dataset(tmp_path, rows))
    _, serial = evaluate(items, fake_agent, progress=False)
    out = tmp_path / "ray.jsonl"
    _, on_ray = evaluate(
        items, fake_agent, out=out, backend=Backend(2, use_ray=True), concurrency=2,
        progress=False,
    )  # fmt: skip
    assert {r.id: r.prediction for r in on_ray} == {r.id: r.prediction for r in serial}
    assert sorted(read_run(out, ItemResult)[1]) == sorted(r.id for r in serial)
