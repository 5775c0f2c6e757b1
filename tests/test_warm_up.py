"""Start-up warm-up: every role loads before the first question, failures are reported."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tests.fixtures.fakes import BoxFillSegmenter, BrightSpotDetector, EchoVQA, RednessMatcher
from vpagent.config import load_settings
from vpagent.tools.errors import CannotAnswer, ModelUnavailable
from vpagent.tools.roles import OCR, VQA, Captioner, DepthEstimator, FaceDetector, Specialist
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.types import Detection, TextLine, ToolInfo
from vpagent.tools.warm_up import warm_up


class Counting:
    """Counts the requests a fake role answers."""

    def __init__(self) -> None:
        self.requests = 0

    def seen(self) -> None:
        self.requests += 1


class FakeOCR(OCR, Counting):
    def info(self) -> ToolInfo:
        return ToolInfo(role="ocr", backend="fake", model="none")

    def read(self, image: np.ndarray) -> list[TextLine]:
        self.seen()
        return []


class MissingDepth(DepthEstimator):
    def info(self) -> ToolInfo:
        return ToolInfo(role="depth", backend="fake", model="missing")

    def depth_batch(self, images: list[np.ndarray]) -> list[np.ndarray]:
        raise ModelUnavailable("depth weights not installed")


class FakeFaces(FaceDetector, Counting):
    def info(self) -> ToolInfo:
        return ToolInfo(role="faces", backend="fake", model="none")

    def detect_faces(self, image: np.ndarray) -> list[Detection]:
        self.seen()
        return []


class FakeCaptioner(Captioner, Counting):
    def info(self) -> ToolInfo:
        return ToolInfo(role="captioner", backend="fake", model="none")

    def caption_batch(self, images: list[np.ndarray]) -> list[str]:
        self.seen()
        return ["grey"] * len(images)


class RefusingVQA(VQA, Counting):
    """A model VQA (not a stand-in) that refuses a blank image."""

    def info(self) -> ToolInfo:
        return ToolInfo(role="vqa", backend="fake", model="refuses")

    def answer_batch(self, images: list[np.ndarray], questions: list[str]) -> list[str]:
        self.seen()
        raise CannotAnswer("nothing to see")


def toolbox(**specialists: Specialist) -> Toolbox:
    roles: dict[str, Specialist] = {
        "detector": BrightSpotDetector(),
        "segmenter": BoxFillSegmenter(),
        "matcher": RednessMatcher(),
        "ocr": FakeOCR(),
        "depth": MissingDepth(),
        "faces": FakeFaces(),
        "captioner": FakeCaptioner(),
        "vqa": RefusingVQA(),
    }
    roles.update(specialists)
    return Toolbox(load_settings().toolbox_config(), specialists=roles)


def test_every_role_answers_one_request_and_a_failure_is_reported_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tools = toolbox()
    with caplog.at_level(logging.WARNING, logger="vpagent.tools.warm_up"):
        report = warm_up(tools)
    assert set(report.seconds) == {
        "detector", "segmenter", "matcher", "ocr", "faces", "captioner", "vqa"
    }  # fmt: skip
    assert report.failed == {"depth": "depth weights not installed"}
    assert "could not load the depth" in caplog.text and "depth failed" in str(report)
    assert tools.specialist("detector").batch_sizes == [1]  # type: ignore[attr-defined]
    for role in ("ocr", "faces", "captioner", "vqa"):
        assert tools.specialist(role).requests == 1, role  # type: ignore[attr-defined]
    assert tools.model_calls == 0  # warm-up is not counted as questions' model time


def test_a_stand_in_vqa_is_not_asked() -> None:
    echo = EchoVQA()  # a stand-in: a language model would answer, nothing to load
    asked: list[str] = []
    echo.answer_batch = lambda images, questions: asked.extend(questions) or []  # type: ignore[method-assign]
    report = warm_up(toolbox(vqa=echo))
    assert "vqa" not in report.seconds and not asked


def test_any_error_is_reported_and_start_up_goes_on() -> None:
    class Exploding(FakeOCR):
        def read(self, image: np.ndarray) -> list[TextLine]:
            raise RuntimeError("CUDA out of memory")

    report = warm_up(toolbox(ocr=Exploding()))
    assert report.failed["ocr"] == "CUDA out of memory" and "faces" in report.seconds


def test_a_remote_model_is_not_asked() -> None:
    class RemoteVQA(RefusingVQA):
        backend = "openai-vlm"  # a model server: a request would spend a call, load nothing

    remote = RemoteVQA()
    report = warm_up(toolbox(vqa=remote))
    assert "vqa" not in report.seconds and remote.requests == 0


@pytest.mark.parametrize(
    ("warm_tools", "own_chat", "warmed"),
    [(True, False, True), (False, False, False), (True, True, False)],
)
def test_build_agent_warms_the_tools_where_it_warms_the_planner(
    monkeypatch: pytest.MonkeyPatch, warm_tools: bool, own_chat: bool, warmed: bool
) -> None:
    from langchain_core.language_models import FakeListChatModel

    import vpagent.agent as agent_module

    calls: list[Toolbox] = []

    def recorded(tools: Toolbox):  # type: ignore[no-untyped-def]
        calls.append(tools)
        return warm_up(toolbox())  # fakes: the configured models are not loaded here

    monkeypatch.setattr(agent_module, "warm_up", recorded)
    monkeypatch.setenv("VPAGENT_TEST_LLM_KEY", "unused")
    settings = load_settings(
        llm={"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
             "api_key_env": "VPAGENT_TEST_LLM_KEY"},
        agent={"warm_tools": warm_tools},
    )  # fmt: skip
    events: list[object] = []
    chat = FakeListChatModel(responses=["x"]) if own_chat else None
    with agent_module.build_agent(settings, chat, on_event=events.append) as agent:
        assert [t is agent.runner.toolbox for t in calls] == ([True] if warmed else [])
    said = [str(event) for event in events]
    assert ("loading the tools' models" in said) == warmed
    assert any(s.startswith("tools loaded: detector") for s in said) == warmed


def test_vpagent_ask_loads_only_what_its_one_question_uses(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from tests.fixtures.fakes import spots_image
    from vpagent.cli.main import app

    image = tmp_path / "spots.png"
    Image.fromarray(spots_image()).save(image)
    warm: list[bool] = []

    def record(settings):  # type: ignore[no-untyped-def]
        warm.append(settings.agent.warm_tools)
        raise SystemExit(3)

    monkeypatch.setattr("vpagent.cli.main.agent_or_fail", record)
    run = CliRunner().invoke(app, ["ask", str(image), "How many spots are there?"])
    assert run.exit_code == 3 and warm == [False]


def test_the_program_path_built_for_a_question_does_not_warm(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    import vpagent.agent as agent_module
    import vpagent.student_mode as student_mode

    calls: list[Toolbox] = []
    monkeypatch.setattr(agent_module, "warm_up", lambda tools: calls.append(tools))
    monkeypatch.setattr(student_mode, "build_student_answerer", lambda config: object())
    monkeypatch.setenv("VPAGENT_TEST_LLM_KEY", "unused")
    settings = load_settings(
        llm={"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m",
             "api_key_env": "VPAGENT_TEST_LLM_KEY"},
        agent={"mode": "student", "student": str(tmp_path)},
    )  # fmt: skip
    agent = agent_module.build_agent(settings)
    assert not agent.program_path_started
    with agent:
        assert agent.runner is not None  # started now, for a question: within its budget
    assert calls == []
