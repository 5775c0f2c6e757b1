"""A loopback OpenAI-compatible chat endpoint for the VLM tests, started by the test itself.

It records every request, decodes the image each one carries, and answers in a mode the test
picks: ``ok`` (a reply computed from the decoded image and prompt), ``slow`` (answers after
``delay`` seconds), ``error`` (HTTP ``status`` with an OpenAI-style error body), ``garbage``
(HTTP 200 with a body that is not a chat completion).
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from PIL import Image


def decoded_parts(body: dict[str, Any]) -> tuple[np.ndarray, str]:
    """(the image as an RGB array, the prompt text) of a one-message multimodal request."""
    (message,) = body["messages"]
    image = text = None
    for part in message["content"]:
        if part["type"] == "image_url":
            header, _, data = part["image_url"]["url"].partition(",")
            assert header.startswith("data:image/") and header.endswith(";base64")
            image = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
        elif part["type"] == "text":
            text = part["text"]
    assert image is not None and text is not None, "the request lacks the image or the prompt"
    return image, text


def describe_image(body: dict[str, Any]) -> str:
    """The default reply: the decoded image's size and dominant channel, and the prompt."""
    image, text = decoded_parts(body)
    height, width = image.shape[:2]
    colour = ("red", "green", "blue")[int(np.argmax(image.reshape(-1, 3).mean(axis=0)))]
    if "yes or no" in text:
        return "Yes." if colour == "red" else "No, it is not."
    return f"{colour} {width}x{height}"


class FakeVLMServer:
    """``with FakeVLMServer() as fake: fake.base_url`` -> ``http://127.0.0.1:<port>/v1``."""

    def __init__(self, reply: Callable[[dict[str, Any]], str] = describe_image) -> None:
        self.reply = reply
        self.mode = "ok"
        self.delay = 0.0
        self.status = 500
        self.error_message = "internal error"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeVLMServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _send(self, status: int, payload: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if fake.mode == "slow":
                    time.sleep(fake.delay)
                if fake.mode == "error":
                    error = {"error": {"message": fake.error_message, "type": "server_error"}}
                    self._send(fake.status, json.dumps(error).encode())
                    return
                if fake.mode == "garbage":
                    self._send(200, b"<html>surprise</html>", "text/html")
                    return
                completion = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body.get("model", ""),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": fake.reply(body)},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                self._send(200, json.dumps(completion).encode())

        return Handler


def free_port() -> int:
    """A loopback port nobody listens on (for the "endpoint down" case)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
