"""A client that hangs up while still sending its request body (found by the soak,
benchmarks/bench_soak.py): it is counted as a closed request (499), not as a 500 with an
"Exception in ASGI application" traceback in the server's log."""

from __future__ import annotations

import logging
import re
import socket
import time
from urllib.parse import urlparse

import httpx
import pytest

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.http_server import serving
from vpagent.http import create_app

PART = b'--b\r\nContent-Disposition: form-data; name="question"\r\n\r\nHow many?\r\n--b\r\n'


def hang_up_mid_upload(base: str, path: str, content_type: str, sent: bytes) -> None:
    """Send headers promising a 100 kB body, part of it, then close the connection."""
    address = urlparse(base)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n"
        "Content-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port)) as connection:
        connection.sendall(head.encode() + sent)
        time.sleep(0.3)  # the server is reading the body when the client leaves


def requests_counted(base: str, status: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    pattern = rf'vpagent_http_requests_total\{{route="[^"]*",status="{status}"\}} ([0-9.]+)'
    return sum(float(value) for value in re.findall(pattern, text))


@pytest.mark.parametrize(
    ("path", "content_type", "sent"),
    [
        ("/v1/ask", "multipart/form-data; boundary=b", PART),
        ("/v1/ask", "application/json", b'{"question": "How many?", "image_base64": "iVBOR'),
        ("/v1/chat/completions", "application/json", b'{"model": "vpagent", "messages": ['),
    ],
    ids=["multipart", "json", "chat"],
)  # fmt: skip
def test_a_client_gone_mid_upload_is_a_closed_request_not_a_server_error(
    caplog: pytest.LogCaptureFixture, path: str, content_type: str, sent: bytes
) -> None:
    agent = make_agent([COUNT])
    with serving(create_app(agent)) as base, caplog.at_level(logging.INFO):
        hang_up_mid_upload(base, path, content_type, sent)
        deadline = time.monotonic() + 10
        while requests_counted(base, "499") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        closed, failed = requests_counted(base, "499"), requests_counted(base, "500")
        assert httpx.get(f"{base}/healthz").status_code == 200
    agent.close()
    assert (closed, failed) == (1, 0)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage() for r in errors]
