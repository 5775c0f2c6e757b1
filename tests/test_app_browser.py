"""The app in a real headless Chromium: upload a bundled photo, ask, see answer and rationale.

Needs Debian's chromium (scripts/install-browser.sh) and the playwright package; the LLM is
scripted, the vision tools are the embedded offline ones. Under CI a missing browser fails.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from tests.browser.driver import CHROMIUM, ask_in_page, chromium_page, free_port
from tests.fixtures.agents import KeywordEmbed
from vpagent.agent import Agent
from vpagent.apps.gradio_app import build_ui, launch_options
from vpagent.config import load_settings
from vpagent.planner import ExampleRetriever, Planner, load_examples
from vpagent.program_runner import ProgramRunner

COUNT_DOGS = (
    "```python\ndef execute_command(image):\n    dogs = image.find('dog')\n"
    "    return str(len(dogs))\n```"
)

_missing = [
    why
    for why, ok in [
        ("Debian's chromium (run scripts/install-browser.sh)", CHROMIUM.exists()),
        ("the playwright package", importlib.util.find_spec("playwright") is not None),
    ]
    if not ok
]
if _missing and not os.environ.get("CI"):
    pytest.skip(f"needs {' and '.join(_missing)}", allow_module_level=True)


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    assert not _missing, f"the browser test needs {' and '.join(_missing)}"
    settings = load_settings(sandbox={"cpu_seconds": 10, "wall_seconds": 60})
    retriever = ExampleRetriever(load_examples(), KeywordEmbed(["many", "color"]))
    planner = Planner(FakeListChatModel(responses=[COUNT_DOGS]), retriever, model_id="fake")
    agent = Agent(planner, ProgramRunner(settings, pool_size=1), max_repairs=0)
    demo = build_ui(agent)
    _, url, _ = demo.queue().launch(
        **launch_options(settings, "127.0.0.1", free_port()), prevent_thread_lock=True
    )
    try:
        yield url
    finally:
        demo.close()
        demo.vpagent_controller.close()
        agent.close()


def test_browser_upload_ask_answer_and_rationale(
    app_url: str, images_dir: Path, tmp_path: Path
) -> None:
    with chromium_page() as (page, off_loopback):
        answer = ask_in_page(page, app_url, images_dir / "two_dogs.jpg", "How many dogs are there?")
        assert re.fullmatch(r"\d+", answer), answer
        assert "✔" in page.locator("#status").inner_text()
        assert page.locator("#steps-gallery img").count() >= 1
        assert "find" in page.locator("#steps-table").inner_text()
        # edit the program in the page and run it through the sandbox
        page.locator("#program .cm-content").fill(
            "def execute_command(image):\n    return 'edited: ' + str(len(image.find('dog')))\n"
        )
        page.locator("#run-program").click()
        page.wait_for_function(
            "() => /edited program (answered|failed)/"
            ".test(document.querySelector('#status').innerText)",
            timeout=60_000,
        )
        assert page.locator("#answer textarea").input_value() == f"edited: {answer}"
        page.get_by_role("tab", name="History").click()
        edited_row = page.locator("#history [role=gridcell]", has_text="(edited program)")
        edited_row.first.wait_for(timeout=10_000)
        page.get_by_role("tab", name="Visual rationale").click()
        shot = tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # a bundled example loads its photo and its question
        page.locator("#examples button").nth(2).click()  # bus.jpg, the third photo by name
        page.wait_for_function(
            "() => document.querySelector('#question textarea').value.includes('sunglasses')"
        )
        page.get_by_role("tab", name="Backends").click()
        page.locator("#planner").get_by_text("Planner LLM").wait_for(timeout=10_000)
        assert "stand-in" in page.locator("#backends").inner_text()
        assert off_loopback == [], f"the page asked for resources off loopback: {off_loopback}"
