"""The host side of the image API: validation, caching, batching, and the full sandbox path."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.fixtures.fakes import (
    BoxFillSegmenter,
    BrightSpotDetector,
    EchoVQA,
    RednessMatcher,
    spots_image,
)
from vpagent.config import load_settings
from vpagent.program_runner import ProgramRunner
from vpagent.tools.batching import MicroBatcher
from vpagent.tools.program_host import ProgramHost
from vpagent.tools.toolbox import Toolbox


@pytest.fixture
def toolbox() -> Toolbox:
    settings = load_settings(batching={"window_ms": 30, "max_batch": 8})
    specialists = {
        "detector": BrightSpotDetector(),
        "matcher": RednessMatcher(),
        "vqa": EchoVQA(),
        "segmenter": BoxFillSegmenter(),
    }
    return Toolbox(
        settings.toolbox_config(), specialists=specialists, llm=lambda q: f"llm says {q}"
    )


def test_find_returns_whole_image_boxes_from_a_crop(toolbox: Toolbox) -> None:
    host = ProgramHost(toolbox, spots_image())
    all_spots = host("find", {"image": host.image_id, "box": [0, 0, 80, 60], "name": "spot"})
    assert [hit["box"] for hit in all_spots] == [[10, 20, 20, 30], [60, 20, 70, 30]]
    right_half = host("find", {"image": host.image_id, "box": [40, 0, 80, 60], "name": "Spot "})
    assert [hit["box"] for hit in right_half] == [[60, 20, 70, 30]]
    assert host.artifacts[1].region == [40, 0, 80, 60]


@pytest.mark.parametrize(
    ("tool", "args", "message"),
    [
        ("find", {"box": [0, 0, 5, 5], "name": "spot"}, "image"),
        ("find", {"image": "ID", "box": [0, 0, 80, 60], "name": ""}, "name"),
        ("find", {"image": "ID", "box": [0, 0], "name": "spot"}, "box"),
        ("find", {"image": "ID", "box": [0, 0, 80, 60], "name": "spot", "x": 1}, "x"),
        ("find", {"image": "other", "box": [0, 0, 80, 60], "name": "spot"}, "unknown image"),
        ("find", {"image": "ID", "box": [500, 500, 900, 900], "name": "spot"}, "empty"),
        ("best_text_match", {"image": "ID", "box": [0, 0, 80, 60], "options": []}, "options"),
        ("rm_rf", {}, "unknown tool"),
    ],
)
def test_hostile_arguments_are_rejected(
    toolbox: Toolbox, tool: str, args: dict, message: str
) -> None:
    host = ProgramHost(toolbox, spots_image())
    if args.get("image") == "ID":
        args = {**args, "image": host.image_id}
    with pytest.raises(ValueError, match=message):
        host(tool, args)


def test_cache_hit_makes_no_model_call(toolbox: Toolbox) -> None:
    host = ProgramHost(toolbox, spots_image())
    args = {"image": host.image_id, "box": [0, 0, 80, 60], "name": "spot"}
    first = host("find", args)
    calls = toolbox.model_calls
    again = ProgramHost(toolbox, spots_image())("find", {**args, "image": host.image_id})
    assert again == first
    assert toolbox.model_calls == calls
    assert toolbox.cache.hits == 1


def test_an_on_disk_cache_is_shared_only_by_the_same_tool_configuration(tmp_path) -> None:
    def host(detector_options: dict) -> tuple[Toolbox, ProgramHost]:
        settings = load_settings(
            cache={"directory": str(tmp_path)},
            tools={"detector": {"backend": "ssd-coco", "options": detector_options}},
        )
        toolbox = Toolbox(settings.toolbox_config(), specialists={"detector": BrightSpotDetector()})
        return toolbox, ProgramHost(toolbox, spots_image())

    first_server, first = host({"score_threshold": 0.5})
    args = {"image": first.image_id, "box": [0, 0, 80, 60], "name": "spot"}
    first("find", args)
    first_server.cache.close()
    same_server, same = host({"score_threshold": 0.5})  # a new process, same settings
    same("find", args)
    assert same_server.cache.hits == 1
    other_server, other = host({"score_threshold": 0.3})  # another threshold: not its results
    other("find", args)
    assert other_server.cache.hits == 0 and other_server.model_calls == 1


def test_batched_results_equal_unbatched(toolbox: Toolbox) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (40, 40, 3), dtype=np.uint8) for _ in range(8)]
    for image in images:
        image[5:15, 5:15] = 255
    detector = toolbox.specialist("detector")
    unbatched = [detector.detect(image, ["spot"]) for image in images]
    with ThreadPoolExecutor(8) as pool:
        batched = list(pool.map(lambda image: toolbox.detect(image, ["spot"]), images))
    assert batched == unbatched
    assert max(detector.batch_sizes) > 1  # concurrent calls really were batched


def test_a_failing_item_fails_only_its_own_call() -> None:
    calls: list[list[int]] = []

    def run(batch: list[int]) -> list[int]:
        calls.append(batch)
        if 13 in batch:
            raise ValueError("unlucky")
        return [n * 2 for n in batch]

    batcher = MicroBatcher(run, window_s=0.05, max_batch=8, name="test")
    results: dict[int, object] = {}

    def call(n: int) -> None:
        try:
            results[n] = batcher(n)
        except ValueError as error:
            results[n] = error

    threads = [threading.Thread(target=call, args=(n,)) for n in (1, 13, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[1] == 2 and results[3] == 6
    assert isinstance(results[13], ValueError)


def test_programs_reach_the_tools_through_the_sandbox(toolbox: Toolbox) -> None:
    program = (
        "def execute_command(image):\n"
        "    spots = image.find('spot')\n"
        "    left, right = sorted(spots, key=lambda s: s.horizontal_center)\n"
        "    red = left.verify_property('spot', 'red')\n"
        "    covered = image.crop(0, 0, 40, 60).segment()\n"
        "    words = [len(spots), left.left_of(right), red, round(covered, 2)]\n"
        "    return ' '.join(str(w) for w in words) + ' ' + llm_query('hi')\n"
    )
    with ProgramRunner(load_settings(), toolbox=toolbox, pool_size=1) as runner:
        result, trace = runner.run(program, spots_image(), question="q?")
    assert result.ok, result.error
    assert result.answer == "2 True True 0.5 llm says hi"
    assert [step.tool for step in trace.steps] == [
        "find",
        "verify_property",
        "segment",
        "llm_query",
    ]
    assert trace.steps[0].artifacts.boxes[0]["label"] == "spot"
    assert trace.steps[2].artifacts.mask is not None
    assert trace.question == "q?" and trace.answer == result.answer


def test_a_tool_failure_is_a_tool_error_for_that_program(toolbox: Toolbox) -> None:
    program = "def execute_command(image):\n    return len(image.find('broken'))\n"
    with ProgramRunner(load_settings(), toolbox=toolbox, pool_size=0) as runner:
        result, trace = runner.run(program, spots_image())
        assert result.error_kind == "tool_error"
        assert result.line == 2 and "model exploded" in (result.error or "")
        assert trace.steps[0].error is not None
        ok, _ = runner.run(
            "def execute_command(image):\n    return image.count('spot')\n", spots_image()
        )
        assert ok.answer == "2"
