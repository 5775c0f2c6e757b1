"""The ``openai-vlm`` backend through LangChain's ChatOpenAI against a loopback fake endpoint."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest

pytest.importorskip("langchain_openai")

from tests.fixtures.vlm_fake_server import FakeVLMServer, decoded_parts, free_port
from vpagent.config import load_settings
from vpagent.program_runner import ProgramRunner
from vpagent.tools.errors import CannotAnswer, ModelUnavailable, ToolError
from vpagent.tools.registry import build_specialist
from vpagent.tools.remote_vlm import RemoteVLMError
from vpagent.tools.toolbox import Toolbox
from vpagent.tools.vlm_roles import forget_engines

RED = np.zeros((60, 100, 3), np.uint8)
RED[..., 0] = 220
BLUE = np.zeros((30, 20, 3), np.uint8)
BLUE[..., 2] = 200


def _png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def fresh_engines():
    forget_engines()
    yield
    forget_engines()


@pytest.fixture
def fake():
    with FakeVLMServer() as server:
        yield server


def _role(role: str, base_url: str, **options):
    settings = {"base_url": base_url, "timeout_s": 2, "max_retries": 0, **options}
    return build_specialist(role, "openai-vlm", model="fake-vlm", options=settings)


def test_question_and_downscaled_image_arrive(fake):
    vqa = _role("vqa", fake.base_url, max_side=50)
    assert vqa.answer(RED, "What is the person holding?") == "red 50x30"
    (body,) = fake.requests
    image, prompt = decoded_parts(body)
    assert image.shape == (30, 50, 3)  # longer side 100 -> 50, aspect kept
    assert prompt.startswith("What is the person holding?")
    assert body["model"] == "fake-vlm" and body["temperature"] == 0.0


def test_batch_sends_one_request_per_crop_in_order(fake):
    vqa = _role("vqa", fake.base_url)
    assert vqa.answer_batch([RED, BLUE], ["q1?", "q2?"]) == ["red 100x60", "blue 20x30"]
    assert len(fake.requests) == 2


def test_caption_and_verify_property(fake):
    captioner = _role("captioner", fake.base_url, image_format="png")
    assert captioner.caption(BLUE) == "blue 20x30"
    assert "Describe the image" in decoded_parts(fake.requests[-1])[1]
    matcher = _role("matcher", fake.base_url)
    assert matcher.verify(RED, "bus", "red") is True
    assert matcher.verify(BLUE, "bus", "red") is False
    assert "Is the bus in the image red?" in decoded_parts(fake.requests[-1])[1]


def test_api_key_comes_from_the_named_variable(fake, monkeypatch):
    monkeypatch.setenv("VLM_TEST_KEY", "s3cret")
    _role("vqa", fake.base_url, api_key_env="VLM_TEST_KEY").answer(RED, "what?")
    assert fake.headers[-1]["authorization"] == "Bearer s3cret"
    monkeypatch.delenv("VLM_TEST_KEY")
    forget_engines()
    with pytest.raises(ModelUnavailable, match=r"\$VLM_TEST_KEY"):
        _role("vqa", fake.base_url, api_key_env="VLM_TEST_KEY").answer(RED, "what?")


def test_endpoint_down_is_a_clear_tool_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(
        RemoteVLMError,
        match=r"openai-vlm .*cannot connect \(.*Connection refused\); is the server running",
    ):
        _role("vqa", url).answer(RED, "what?")


def test_slow_endpoint_times_out_without_hanging(fake):
    fake.mode, fake.delay = "slow", 5.0
    vqa = _role("vqa", fake.base_url, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(RemoteVLMError, match=r"no answer within 0.5 s"):
        vqa.answer(RED, "what?")
    assert time.monotonic() - started < fake.delay  # gave up before the server answered


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (500, "image input is not supported - provide the mmproj", "not accept images"),
        (400, "this model is not a multimodal model", "not accept images"),
        (401, "bad key", "check the API key"),
        (404, "model 'fake-vlm' not found", "check base_url"),
        (503, "overloaded", "HTTP 503: overloaded"),
    ],
)  # fmt: skip
def test_http_errors_name_the_cause(fake, status, message, expected):
    fake.mode, fake.status, fake.error_message = "error", status, message
    with pytest.raises(RemoteVLMError, match=f"openai-vlm .*HTTP {status}") as caught:
        _role("vqa", fake.base_url).answer(RED, "what?")
    assert expected in str(caught.value)


def test_garbage_reply_is_a_clear_tool_error(fake):
    fake.mode = "garbage"
    with pytest.raises(RemoteVLMError, match="not an OpenAI chat completion"):
        _role("vqa", fake.base_url).answer(RED, "what?")


def test_empty_or_non_yes_no_replies_cannot_answer():
    with FakeVLMServer(reply=lambda body: "  ") as fake, pytest.raises(CannotAnswer, match="empty"):
        _role("vqa", fake.base_url).answer(RED, "what?")
    forget_engines()
    with FakeVLMServer(reply=lambda body: "Perhaps") as fake, pytest.raises(CannotAnswer):
        _role("matcher", fake.base_url).verify(RED, "bus", "red")


def test_base_url_is_required_and_unknown_options_refused():
    with pytest.raises(ModelUnavailable, match="no base_url"):
        build_specialist("vqa", "openai-vlm", model="m").answer(RED, "what?")
    with pytest.raises(ValueError, match="no option"):
        _ = _role("vqa", "http://127.0.0.1:9/v1", temprature=1).engine


def test_vlm_settings_fill_roles_and_micro_batch(fake):
    settings = load_settings(
        vlm={"provider": "openai", "model": "fake-vlm", "base_url": fake.base_url,
             "api_key_env": "", "options": {"timeout_s": 2}},
        batching={"window_ms": 200, "max_batch": 8},
    )  # fmt: skip
    toolbox = Toolbox(settings.toolbox_config())
    answers: dict[int, str] = {}
    images = [RED, BLUE, RED]

    def ask(i: int) -> None:
        answers[i] = toolbox.answer(images[i], f"question {i}?")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {0: "red 100x60", 1: "blue 20x30", 2: "red 100x60"}
    assert max(toolbox._batchers["vqa"].batch_sizes) > 1
    assert toolbox.verify_property(RED, "car", "red") is True
    assert toolbox.caption(BLUE) == "blue 20x30"
    infos = {info.role: info for info in toolbox.describe()}
    assert infos["vqa"].backend == "openai-vlm" and not infos["vqa"].stand_in
    assert "classifier-minilm" in infos["matcher"].note


PROGRAM = """
def execute_command(image):
    return image.simple_query("{question}")
"""


def test_a_program_gets_the_answer_or_a_tool_error_naming_the_backend(fake, images_dir):
    settings = load_settings(
        vlm={"provider": "openai", "model": "fake-vlm", "base_url": fake.base_url,
             "api_key_env": "", "options": {"timeout_s": 2, "max_retries": 0}},
    )  # fmt: skip
    with ProgramRunner(settings, pool_size=0) as runner:
        program = PROGRAM.format(question="What is the person holding?")
        result, _ = runner.run(program, images_dir / "two_dogs.jpg")
        assert result.ok, result.error
        colour, size = result.answer.split()
        assert colour in ("red", "green", "blue") and max(map(int, size.split("x"))) <= 768
        fake.mode, fake.status, fake.error_message = "error", 500, "image input is not supported"
        program = PROGRAM.format(question="What colour is the dog?")
        result, _ = runner.run(program, images_dir / "two_dogs.jpg")
    assert not result.ok and result.error_kind.value == "tool_error"
    assert "openai-vlm" in result.error and "not accept images" in result.error
    assert isinstance(RemoteVLMError("x"), ToolError)


def test_http_api_reports_a_down_vlm_without_a_500():
    from fastapi.testclient import TestClient
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from tests.fixtures.agents import KeywordEmbed
    from vpagent.agent import Agent
    from vpagent.http import create_app
    from vpagent.planner import ExampleRetriever, Planner, load_examples

    url = f"http://127.0.0.1:{free_port()}/v1"
    settings = load_settings(
        sandbox={"cpu_seconds": 2, "wall_seconds": 10},
        vlm={"provider": "openai", "model": "fake-vlm", "base_url": url, "api_key_env": "",
             "options": {"timeout_s": 1, "max_retries": 0}},
    )  # fmt: skip
    program = "```python\n" + PROGRAM.format(question="What is the dog holding?") + "```"
    planner = Planner(
        FakeListChatModel(responses=[program]),
        ExampleRetriever(load_examples(), KeywordEmbed(["holding"])),
        model_id="fake",
    )
    agent = Agent(planner, ProgramRunner(settings, pool_size=0), max_repairs=0)
    with agent, TestClient(create_app(agent)) as client:
        body = {"image_base64": base64.b64encode(_png(RED)).decode(), "question": "What is held?"}
        response = client.post("/v1/ask", json=body)
    assert response.status_code == 200, response.text
    payload = response.json()
    assert "openai-vlm" in str(payload) and "cannot connect" in str(payload)
