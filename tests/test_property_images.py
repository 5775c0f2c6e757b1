"""Generated broken and unusual images at every entry point.

Truncated files, wrong headers, huge dimensions claimed by a header, CMYK, 16-bit grey and
animated pictures, made by hypothesis from random pictures. Level 1 is the one decoder they all
share (``vpagent.images.load_image``): a broken file is an ``ImageError`` that says why, never
another exception and never a wrong picture (a truncated file either fails or decodes to the
whole picture); a CMYK, 16-bit or animated file is a picture (its first frame; 16 bits scaled,
not clipped to white). Level 2 sends each generated file through every entry point (Agent.ask,
``/v1/ask`` multipart and JSON, the OpenAI endpoint, MCP ``ask_image``, eval's JSONL loader): each
refuses exactly what the decoder refuses, with the decoder's reason and its own input-error
status, and answers the rest.
"""

from __future__ import annotations

import base64
import io
import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp.shared.memory import create_connected_server_and_client_session
from mcp.types import TextContent
from PIL import Image

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.http_server import serving
from tests.property_settings import fixed, fresh
from vpagent.agent import Agent
from vpagent.attempts import FailureReason
from vpagent.evaluation.datasets.load import load_dataset
from vpagent.evaluation.evaluate import evaluate_item
from vpagent.http import create_app
from vpagent.images import MAX_IMAGE_PIXELS, ImageError, load_image
from vpagent.mcp_server.inputs import ImagePolicy
from vpagent.mcp_server.server import McpFrontEnd

LOSSLESS = ["PNG", "BMP", "TIFF", "GIF"]
QUESTION = "How many spots?"


@dataclass(frozen=True)
class Case:
    """A generated file. ``verdict``: "refuse" (must be refused), "accept" (must decode to
    ``pixels`` within ``tolerance`` mean absolute difference) or "either" (refused, or decoded
    to ``pixels`` exactly: a cut that only dropped trailing bytes)."""

    kind: str
    data: bytes
    verdict: str
    pixels: np.ndarray | None = None
    tolerance: float = 0.0

    def __repr__(self) -> str:
        return f"Case({self.kind}, {len(self.data)} bytes, {self.verdict})"


colours = st.tuples(*[st.integers(0, 255)] * 3)


@st.composite
def pictures(draw: st.DrawFn) -> np.ndarray:
    """A smooth RGB picture (a background and a rectangle), 8 to 64 pixels a side."""
    height, width = draw(st.integers(8, 64)), draw(st.integers(8, 64))
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = draw(colours)
    top, left = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
    pixels[top : top + draw(st.integers(1, height)), left : left + draw(st.integers(1, width))] = (
        draw(colours)
    )
    return pixels


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@st.composite
def truncated(draw: st.DrawFn) -> Case:
    data = encode(Image.fromarray(draw(pictures())), draw(st.sampled_from([*LOSSLESS, "JPEG"])))
    cut = draw(st.integers(1, len(data) - 1))
    return Case("truncated", data[:cut], "either", load_image(data))


@st.composite
def wrong_header(draw: st.DrawFn) -> Case:
    data = encode(Image.fromarray(draw(pictures())), draw(st.sampled_from([*LOSSLESS, "JPEG"])))
    magic = draw(
        st.one_of(
            st.binary(min_size=1, max_size=16),
            st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\0"]),
        )
    )
    broken = magic + data[len(magic) :]
    return Case("wrong header", broken, "either" if broken != data else "accept", load_image(data))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@st.composite
def huge_dimensions(draw: st.DrawFn) -> Case:
    """A small file whose header claims more than MAX_IMAGE_PIXELS (PNG, BMP or GIF)."""
    limit = {"PNG": 2**31 - 1, "BMP": 2**31 - 1, "GIF": 2**16 - 1}
    fmt = draw(st.sampled_from(sorted(limit)))
    width = draw(st.integers(MAX_IMAGE_PIXELS // limit[fmt] + 1, limit[fmt]))
    height = draw(st.integers(MAX_IMAGE_PIXELS // width + 1, limit[fmt]))
    data = encode(Image.fromarray(draw(pictures())), fmt)
    if fmt == "PNG":
        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        data = data[:8] + _png_chunk(b"IHDR", header) + data[33:]
    elif fmt == "BMP":
        data = data[:18] + struct.pack("<ii", width, height) + data[26:]
    else:
        data = data[:6] + struct.pack("<HH", width, height) + data[10:]
    return Case("huge dimensions", data, "refuse")


@st.composite
def cmyk(draw: st.DrawFn) -> Case:
    pixels = draw(pictures())
    fmt = draw(st.sampled_from(["JPEG", "TIFF"]))
    data = encode(
        Image.fromarray(pixels).convert("CMYK"), fmt, **({"quality": 95} if fmt == "JPEG" else {})
    )
    return Case("CMYK", data, "accept", pixels, 12.0 if fmt == "JPEG" else 0.0)


@st.composite
def sixteen_bit(draw: st.DrawFn) -> Case:
    shape = (draw(st.integers(8, 48)), draw(st.integers(8, 48)))
    seed = draw(st.integers(0, 2**32 - 1))
    grey = np.random.default_rng(seed).integers(0, 65536, size=shape, dtype=np.uint16)
    data = encode(Image.fromarray(grey), draw(st.sampled_from(["PNG", "TIFF"])))
    expected = np.repeat(np.rint(grey * (255 / 65535)).astype(np.uint8)[:, :, None], 3, axis=2)
    return Case("16-bit", data, "accept", expected)


@st.composite
def animated(draw: st.DrawFn) -> Case:
    first = draw(pictures())
    frames = [first] + [
        np.roll(first, draw(st.integers(1, 7)), axis=1) for _ in range(draw(st.integers(1, 3)))
    ]
    images = [Image.fromarray(frame) for frame in frames]
    fmt = draw(st.sampled_from(["GIF", "PNG", "WEBP"]))
    options: dict[str, Any] = {"save_all": True, "append_images": images[1:], "duration": 100}
    if fmt == "WEBP":
        options["lossless"] = True
    return Case("animated", encode(images[0], fmt, **options), "accept", first)


cases = st.one_of(truncated(), wrong_header(), huge_dimensions(), cmyk(), sixteen_bit(), animated())


def decoded(case: Case) -> np.ndarray | ImageError:
    """What the shared decoder makes of ``case``: the pixels, or its ImageError."""
    try:
        return load_image(case.data)
    except ImageError as error:
        assert str(error)
        return error


def check_decoder(case: Case) -> None:
    outcome = decoded(case)
    if isinstance(outcome, ImageError):
        assert case.verdict != "accept", f"{case}: refused ({outcome})"
        return
    assert case.verdict != "refuse", f"{case}: decoded to {outcome.shape}"
    assert outcome.dtype == np.uint8 and outcome.ndim == 3 and outcome.shape[2] == 3
    assert case.pixels is not None and outcome.shape == case.pixels.shape, case
    difference = np.abs(outcome.astype(int) - case.pixels.astype(int)).mean()
    assert difference <= case.tolerance, f"{case}: mean difference {difference:.1f}"


# Level 1: the decoder every entry point uses.


@fixed(600)
@given(cases)
def test_the_decoder_refuses_broken_files_and_reads_unusual_ones(case: Case) -> None:
    check_decoder(case)


@pytest.mark.fuzz
@fresh(600)
@given(cases)
def test_the_decoder_refuses_broken_files_and_reads_unusual_ones_fuzz(case: Case) -> None:
    check_decoder(case)


def test_a_16_bit_photo_is_scaled_not_clipped_to_white() -> None:
    """Found by the 16-bit property: PIL's own conversion clipped every value above 255."""
    ramp = np.linspace(0, 65535, 40 * 30).reshape(30, 40).astype(np.uint16)
    pixels = load_image(encode(Image.fromarray(ramp), "PNG"))
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255 and 100 < pixels.mean() < 155


# Level 2: every entry point agrees with the decoder.


@dataclass
class EntryPoints:
    agent: Agent
    base: str
    mcp: McpFrontEnd
    folder: Path


@pytest.fixture(scope="module")
def entry_points(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EntryPoints]:
    folder = tmp_path_factory.mktemp("images")
    agent = make_agent([COUNT])
    front = McpFrontEnd(agent, ImagePolicy.of([folder], max_bytes=8 * 2**20))
    with serving(create_app(agent)) as base:
        yield EntryPoints(agent, base, front, folder)
    front.close()
    agent.close()


def ask_agent(points: EntryPoints, data: bytes) -> str | None:
    """None when answered, else the refusal's text."""
    try:
        assert points.agent.ask(data, QUESTION).answer is not None
    except ImageError as error:
        return str(error)
    return None


def ask_http(points: EntryPoints, data: bytes, as_json: bool) -> str | None:
    with httpx.Client(base_url=points.base, timeout=60) as client:
        if as_json:
            body = {"image_base64": base64.b64encode(data).decode(), "question": QUESTION}
            response = client.post("/v1/ask", json=body)
        else:
            upload = {"image": ("image.bin", data, "application/octet-stream")}
            response = client.post("/v1/ask", files=upload, data={"question": QUESTION})
    if response.status_code == 200:
        assert response.json()["answer"] is not None
        return None
    assert response.status_code == 422, response.text
    return str(response.json()["detail"])


def ask_openai(points: EntryPoints, data: bytes) -> str | None:
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    content = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": url}}]
    body = {"model": "vpagent", "messages": [{"role": "user", "content": content}]}
    response = httpx.post(f"{points.base}/v1/chat/completions", json=body, timeout=60)
    if response.status_code == 200:
        assert response.json()["choices"][0]["message"]["content"] is not None
        return None
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    return str(error["message"])


def ask_mcp(points: EntryPoints, data: bytes) -> str | None:
    outcome: list[str | None] = []

    async def main() -> None:
        async with create_connected_server_and_client_session(points.mcp.server) as session:
            url = "data:image/png;base64," + base64.b64encode(data).decode()  # bare base64
            arguments = {"image": url, "question": QUESTION}  # that short could be a path
            result = await session.call_tool("ask_image", arguments)
            if not result.isError:
                assert (result.structuredContent or {}).get("answer") is not None
                outcome.append(None)
                return
            (content,) = result.content
            assert isinstance(content, TextContent)
            outcome.append(content.text)

    anyio.run(main)
    return outcome[0]


def ask_eval(points: EntryPoints, data: bytes) -> str | None:
    image = points.folder / "item.img"
    image.write_bytes(data)
    rows = points.folder / "items.jsonl"
    row = {"id": "q1", "image": str(image), "question": QUESTION, "answer": "2", "type": "count"}
    rows.write_text(json.dumps(row) + "\n")
    (item,) = load_dataset(rows)
    result = evaluate_item(points.agent, item)
    if result.error_kind is None:
        assert result.prediction is not None
        return None
    assert result.error_kind == FailureReason.INPUT and result.prediction is None, result
    return str(result.error)


ENTRY_POINTS = {
    "Agent.ask": ask_agent,
    "/v1/ask multipart": lambda points, data: ask_http(points, data, as_json=False),
    "/v1/ask JSON": lambda points, data: ask_http(points, data, as_json=True),
    "chat completions": ask_openai,
    "MCP ask_image": ask_mcp,
    "eval": ask_eval,
}


def check_entry_points(points: EntryPoints, case: Case) -> None:
    outcome = decoded(case)
    reason = str(outcome).split(" (")[0].replace("the uploaded data ", "")
    for name, ask in ENTRY_POINTS.items():
        refusal = ask(points, case.data)
        if isinstance(outcome, ImageError):
            assert refusal is not None, f"{name} answered {case}, which the decoder refuses"
            assert reason in refusal, f"{name}: {refusal!r} does not say {reason!r}"
        else:
            assert refusal is None, f"{name} refused {case}: {refusal}"


@fixed(30)
@given(cases)
def test_every_entry_point_refuses_what_the_decoder_refuses_and_says_why(
    entry_points: EntryPoints, case: Case
) -> None:
    check_entry_points(entry_points, case)


@pytest.mark.fuzz
@fresh(30)
@given(cases)
def test_every_entry_point_refuses_what_the_decoder_refuses_and_says_why_fuzz(
    entry_points: EntryPoints, case: Case
) -> None:
    check_entry_points(entry_points, case)
