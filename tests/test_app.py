"""The Gradio app through gradio_client, against a server on loopback (fake LLM and tools)."""

from __future__ import annotations

import ipaddress
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client, handle_file
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from PIL import Image

from tests.browser.driver import free_port
from tests.fixtures.agents import KeywordEmbed
from tests.fixtures.fakes import BrightSpotDetector, spots_image
from vpagent.agent import Agent
from vpagent.apps.gradio_app import build_ui, launch, launch_options
from vpagent.apps.inputs import find_examples
from vpagent.config import load_settings
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.program_runner import ProgramRunner
from vpagent.tools.toolbox import Toolbox

COUNT = "```python\ndef execute_command(image):\n    return len(image.find('spot'))\n```"
CRASH = (
    "```python\ndef execute_command(image):\n    spots = image.find('spot')\n    return 1 / 0\n```"
)
SLOW_SECONDS = 3.0


class ScriptedChat(FakeListChatModel):
    """Writes a program chosen by the question: 'crash' -> 1/0, 'slow' -> waits, else count."""

    def _call(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        question = str(messages[-1].content).lower()
        if "slow" in question:
            time.sleep(SLOW_SECONDS)
        return CRASH if "crash" in question else COUNT

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        """The app streams plans (to show tokens as they come): stream the scripted reply."""
        reply = self._call(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=AIMessageChunk(content=reply))


def make_agent() -> Agent:
    settings = load_settings(sandbox={"cpu_seconds": 2, "wall_seconds": 10})
    toolbox = Toolbox(settings.toolbox_config(), specialists={"detector": BrightSpotDetector()})
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    planner = Planner(ScriptedChat(responses=[COUNT]), retriever, model_id="fake")
    return Agent(planner, ProgramRunner(settings, toolbox=toolbox, pool_size=1), max_repairs=0)


# --- a watch on every socket the process opens while the app runs -----------------------------

_WATCH: dict[str, Any] = {"on": False, "events": []}


def _off_loopback(host: object) -> bool:
    if host in (None, "", "localhost"):
        return False
    try:
        return not ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        return True  # a name, which would need a lookup


def _audit(event: str, args: tuple) -> None:
    if not _WATCH["on"]:
        return
    if event == "socket.connect" and isinstance(args[1], tuple):  # not a unix socket
        if _off_loopback(args[1][0]):
            _WATCH["events"].append((event, repr(args[1])))
    elif event == "socket.getaddrinfo" and _off_loopback(args[0]):
        _WATCH["events"].append((event, repr(args[0])))


sys.addaudithook(_audit)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    agent = make_agent()
    _WATCH["on"] = True
    demo = build_ui(agent)
    options = launch_options(agent.runner.settings, "127.0.0.1", free_port())
    _, url, share_url = demo.queue().launch(**options, prevent_thread_lock=True)
    assert share_url is None and url.startswith("http://127.0.0.1:")
    try:
        yield url
    finally:
        demo.close()
        demo.vpagent_controller.close()
        agent.close()
        _WATCH["on"] = False


@pytest.fixture
def client(app_url: str) -> Client:
    """A fresh session (its own history) per test."""
    return Client(app_url, verbose=False, download_files=False)


@pytest.fixture(scope="module")
def spots_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("images") / "spots.png"
    Image.fromarray(spots_image()).save(path)
    return path


def ask(client: Client, image: Path | None, question: str) -> tuple[tuple, list]:
    job = client.submit(
        handle_file(str(image)) if image is not None else None, question, api_name="/ask"
    )
    result = job.result(timeout=60)
    return result, job.outputs()


def local(file: Any) -> str:
    """The server-side path of a file output (the server runs in this process)."""
    return file["path"] if isinstance(file, dict) else file


def unpack(result: tuple) -> dict[str, Any]:
    names = ["status", "answer", "program", "gallery", "steps", "rationale", "download", "history"]
    return dict(zip(names, result, strict=True))


def test_ask_answers_with_program_rationale_and_progress(client: Client, spots_png: Path) -> None:
    result, outputs = ask(client, spots_png, "How many spots are there?")
    out = unpack(result)
    assert out["status"].startswith("✔") and out["answer"] == "2"
    assert "image.find('spot')" in out["program"]
    assert out["gallery"]["selected_index"] == 0  # opens on the first step, large
    [step] = out["gallery"]["value"]
    assert step["caption"].startswith("1. find(spot) → 2 found · ") and " ms" in step["caption"]
    assert Path(local(step["image"])).is_file()
    assert out["steps"]["data"][0][:2] == [1, "find"]
    assert '"label": "spot"' in out["steps"]["data"][0][3]
    assert (
        out["rationale"].startswith("<iframe") and "How many spots are there?" in out["rationale"]
    )
    assert Path(local(out["download"])).read_text().startswith("<!doctype html>")
    assert out["history"]["data"][0][2:5] == ["How many spots are there?", "2", "answered"]
    progress = [o[0] for o in outputs]
    assert any("Planning a program" in p for p in progress)
    assert any("Step 1: find" in p for p in progress)


def test_history_grows_within_a_session(client: Client, spots_png: Path) -> None:
    ask(client, spots_png, "How many spots?")
    result, _ = ask(client, spots_png, "How many bright spots?")
    history = unpack(result)["history"]["data"]
    assert [row[2] for row in history] == ["How many spots?", "How many bright spots?"]


@pytest.mark.parametrize(
    ("image", "question", "message"),
    [
        (None, "How many spots?", "Please upload or paste an image"),
        ("spots", "   ", "Please type a question"),
        ("spots", "x" * 1001, "longer than 1000 characters"),
        ("corrupt", "How many spots?", "could not be read as an image"),
        ("empty", "How many spots?", "could not be read as an image"),
        ("text", "How many spots?", "could not be read as an image"),
    ],
)
def test_bad_input_gives_a_clear_message(
    client: Client, spots_png: Path, tmp_path: Path, image: str | None, question: str, message: str
) -> None:
    files = {
        "spots": spots_png,
        "corrupt": tmp_path / "corrupt.jpg",
        "empty": tmp_path / "empty.png",
        "text": tmp_path / "notes.png",
    }
    files["corrupt"].write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 40)
    files["empty"].write_bytes(b"")
    files["text"].write_text("not an image at all\n")
    result, _ = ask(client, files[image] if image else None, question)
    out = unpack(result)
    assert out["status"].startswith("⚠") and message in out["status"]
    assert "Traceback" not in out["status"] and "/tmp/" not in out["status"]
    assert out["answer"] == ""


def test_program_error_is_explained_with_its_program_and_trace(
    client: Client, spots_png: Path
) -> None:
    result, _ = ask(client, spots_png, "Please crash on these spots")
    out = unpack(result)
    assert out["status"].startswith("⚠ No answer after 1 program.")
    assert "failed (runtime) at line 3" in out["status"]
    assert "ZeroDivisionError: division by zero" in out["status"]
    assert "Traceback" not in out["status"]
    assert "1 / 0" in out["program"] and out["answer"] == ""
    assert out["steps"]["data"][0][1] == "find"  # the call before the crash is still shown
    assert out["history"]["data"][-1][4] == "failed: runtime"


def test_edited_program_runs_in_the_sandbox_and_replaces_the_trace(
    client: Client, spots_png: Path
) -> None:
    ask(client, spots_png, "How many spots?")
    edited = (
        "def execute_command(image):\n"
        "    spots = image.find('spot')\n"
        "    left = [s for s in spots if s.left_of(spots[1])]\n"
        "    return f'{len(spots)} spots, {len(left)} on the left'\n"
    )
    result = client.predict(
        handle_file(str(spots_png)), "How many spots?", edited, api_name="/run_program"
    )
    out = unpack(result)
    assert out["status"].startswith("✔ The edited program answered")
    assert out["answer"] == "2 spots, 1 on the left"
    assert out["program"] == {"__type__": "update"}  # the editor keeps the user's program
    assert out["steps"]["data"][0][1] == "find"
    assert "2 spots, 1 on the left" in out["rationale"]
    history = out["history"]["data"]
    assert history[-1][2:5] == [
        "How many spots? (edited program)",
        "2 spots, 1 on the left",
        "answered (edited)",
    ]


@pytest.mark.parametrize(
    ("program", "message"),
    [
        ("", "The program is empty"),
        ("def execute_command(image):\n    import os\n    return 1", "rejected"),
        ("def execute_command(image):\n    return (", "rejected"),
        ("def execute_command(image):\n    while True:\n        pass", "timeout"),
    ],
)
def test_bad_edited_program_gives_a_clear_message(
    client: Client, spots_png: Path, program: str, message: str
) -> None:
    result = client.predict(
        handle_file(str(spots_png)), "How many spots?", program, api_name="/run_program"
    )
    out = unpack(result)
    assert out["status"].startswith("⚠") and message in out["status"]
    assert "Traceback" not in out["status"] and out["answer"] == ""


def test_cancel_stops_a_run_and_the_next_question_is_answered(
    client: Client, spots_png: Path
) -> None:
    job = client.submit(handle_file(str(spots_png)), "A slow question", api_name="/ask")
    deadline = time.monotonic() + 20
    while not any("Planning" in str(o[0]) for o in job.outputs()):
        assert time.monotonic() < deadline, job.outputs()
        time.sleep(0.1)
    assert client.predict(api_name="/cancel") == "■ Cancelled."
    deadline = time.monotonic() + SLOW_SECONDS + 10
    while not job.done():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert not any(str(o[0]).startswith("✔") for o in job.outputs())
    started = time.monotonic()
    result, _ = ask(client, spots_png, "How many spots?")  # waits for the cancelled run to stop
    assert unpack(result)["answer"] == "2" and time.monotonic() - started < SLOW_SECONDS + 10


def test_backends_panel_names_each_role_and_the_planner(client: Client) -> None:
    table, planner = client.predict(api_name="/backends")
    rows = {row[0]: row for row in table["data"]}
    assert set(rows) >= {"detector", "segmenter", "matcher", "vqa", "ocr"}
    assert rows["detector"][1:4] == ["fake", "bright-spots", "stand-in"]
    assert rows["segmenter"][3] == "stand-in" and rows["ocr"][3] == "real"
    assert "Planner LLM" in planner and "fake" in planner


def test_concurrent_sessions_each_get_their_answer(app_url: str, spots_png: Path) -> None:
    results: dict[int, str] = {}

    def one(i: int) -> None:
        session = Client(app_url, verbose=False, download_files=False)
        result, _ = ask(session, spots_png, f"How many spots? ({i})")
        results[i] = unpack(result)["answer"]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {0: "2", 1: "2", 2: "2"}


def test_launch_options_bind_loopback_and_never_share() -> None:
    settings = load_settings()
    options = launch_options(settings)
    assert options["server_name"] == "127.0.0.1" and options["server_port"] == 7860
    assert options["share"] is False and options["ssr_mode"] is False
    custom = launch_options(settings, host="0.0.0.0", port=9000)
    assert (custom["server_name"], custom["server_port"], custom["share"]) == (
        "0.0.0.0",
        9000,
        False,
    )
    configured = load_settings(server={"host": "::1", "ui_port": 8123})
    assert launch_options(configured)["server_name"] == "::1"
    assert launch_options(configured)["server_port"] == 8123


def test_launch_serves_the_page_on_loopback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import gradio as gr
    import httpx

    import vpagent.agent

    seen: dict[str, Any] = {}

    def serve_once(demo: gr.Blocks) -> None:  # instead of blocking until Ctrl+C
        seen["url"] = demo.local_url
        seen["page"] = httpx.get(demo.local_url, timeout=10).text
        seen["share"] = demo.share

    monkeypatch.setattr(vpagent.agent, "build_agent", lambda settings: make_agent())
    monkeypatch.setattr(gr.Blocks, "block_thread", serve_once)
    port = free_port()
    launch(load_settings(), port=port)
    assert seen["url"] == f"http://127.0.0.1:{port}/" and seen["share"] is False
    assert "vpagent" in seen["page"]
    assert f"vpagent ui: http://127.0.0.1:{port}/" in capsys.readouterr().out
    with pytest.raises(httpx.ConnectError):  # closed again
        httpx.get(seen["url"], timeout=2)


def test_examples_come_from_the_bundled_photos(data_dir: Path) -> None:
    examples = dict(find_examples(data_dir))
    assert str(data_dir / "images" / "two_dogs.jpg") in examples
    assert examples[str(data_dir / "images" / "two_dogs.jpg")] == "How many dogs are there?"


def test_missing_examples_leave_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VPAGENT_DATA_DIR", str(tmp_path / "nowhere"))
    assert find_examples() == []
    with make_agent() as agent:
        demo = build_ui(agent)
        try:
            notes = [
                block.value
                for block in demo.blocks.values()
                if getattr(block, "elem_id", None) == "no-examples"
            ]
        finally:
            demo.vpagent_controller.close()
    assert notes and "No bundled example photos" in notes[0] and "VPAGENT_DATA_DIR" in notes[0]


def test_no_connection_left_loopback_while_the_app_ran(app_url: str) -> None:
    assert _WATCH["events"] == []
