"""Screenshot the app answering a real question with the real (configured) agent.

    python -m tests.browser.screenshot [--out docs/app-screenshot.png]
        [--image ../shared/data/images/two_dogs.jpg] [--question "How many dogs are there?"]

Uses ``build_agent(load_settings())`` (the embedded LLM by default: a few seconds per question on
a 2-core CPU once its prompt prefix is cached), serves the app on loopback and drives it in
headless Chromium.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tests.browser.driver import ask_in_page, chromium_page, free_port
from vpagent.agent import build_agent
from vpagent.apps.gradio_app import build_ui, launch_options
from vpagent.apps.inputs import data_dir
from vpagent.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/app-screenshot.png"))
    parser.add_argument("--image", type=Path, default=data_dir() / "images" / "two_dogs.jpg")
    parser.add_argument("--question", default="How many dogs are there?")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait")
    args = parser.parse_args()

    settings = load_settings()
    with build_agent(settings) as agent:
        demo = build_ui(agent, settings)
        _, url, _ = demo.queue().launch(
            **launch_options(settings, "127.0.0.1", free_port()), prevent_thread_lock=True
        )
        try:
            with chromium_page(viewport=(1400, 1000)) as (page, off_loopback):
                started = time.perf_counter()
                answer = ask_in_page(page, url, args.image, args.question, timeout_s=args.timeout)
                seconds = time.perf_counter() - started
                page.mouse.move(0, 0)
                time.sleep(1.0)  # let the gallery settle
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                status = page.locator("#status").inner_text()
                print(f"answer: {answer!r} in {seconds:.0f} s; status: {status}")
                print(f"screenshot: {args.out}")
                if off_loopback:
                    raise SystemExit(f"the page asked for resources off loopback: {off_loopback}")
        finally:
            demo.close()
            demo.vpagent_controller.close()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
