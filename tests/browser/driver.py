"""Drive the vpagent app in Debian's headless Chromium (Playwright), with no traffic off loopback.

Used by tests/test_app_browser.py and by ``python -m tests.browser.screenshot``.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--no-pings",
    "--dns-prefetch-disable",
    # no name resolves: a page that tried to reach the internet would fail, not leak
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_local(url: str) -> bool:
    """True for loopback http(s)/ws URLs and for data:, blob: and about: URLs."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    return (parts.hostname or "") in LOOPBACK_HOSTS


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1400, 1000)) -> Iterator[tuple[Any, list[str]]]:
    """(page, off_loopback) in a fresh headless Chromium profile.

    Every request the page makes beyond loopback is aborted and its URL recorded in
    ``off_loopback``, so a test can assert that the page works offline and asks for nothing else.
    """
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="vpagent-chromium-"))
    off_loopback: list[str] = []
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                service_workers="block",
                accept_downloads=False,
            )

            def guard(route: Any) -> None:
                url = route.request.url
                if is_local(url):
                    route.continue_()
                else:
                    off_loopback.append(url)
                    route.abort()

            context.route("**/*", guard)
            page = context.new_page()
            try:
                yield page, off_loopback
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def ask_in_page(page: Any, url: str, photo: Path, question: str, *, timeout_s: float = 60.0) -> str:
    """Open the app, upload ``photo``, ask ``question``; wait for the answer and the rationale.

    Returns the answer shown on the page.
    """
    timeout_ms = timeout_s * 1000
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#image input[type=file]").first.set_input_files(str(photo))
    page.locator("#image img").first.wait_for(state="visible", timeout=15_000)
    page.locator("#question textarea, #question input").first.fill(question)
    page.locator("#ask").click()
    answer = page.locator("#answer textarea, #answer input").first
    page.wait_for_function(
        """() => {
            const status = document.querySelector('#status');
            return status && /✔|⚠/.test(status.innerText);
        }""",
        timeout=timeout_ms,
    )
    page.locator("#steps-gallery img").first.wait_for(state="visible", timeout=15_000)
    return answer.input_value()
