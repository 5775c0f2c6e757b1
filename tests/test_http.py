"""The HTTP API through a real uvicorn server on loopback."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from tests.fixtures.http_server import serving
from vpagent.config import ServerConfig
from vpagent.http import create_app

API_KEY = "s3cret"


def _png(pixels) -> bytes:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    agent = make_agent([COUNT])
    with serving(create_app(agent, api_key=API_KEY, config=ServerConfig(max_upload_mb=5))) as base:
        yield base
    agent.close()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, headers={"X-API-Key": API_KEY}, timeout=60) as http:
        yield http


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/v1/ask"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)


def test_ask_multipart_then_fetch_trace(client: httpx.Client) -> None:
    response = client.post(
        "/v1/ask",
        files={"image": ("spots.png", _png(spots_image()), "image/png")},
        data={"question": "How many spots?"},
    )
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["answer"] == "2" and "find('spot')" in payload["program"]
    trace = client.get(f"/v1/traces/{payload['trace_id']}").json()
    assert trace["steps"][0]["tool"] == "find"
    html = client.get(f"/v1/traces/{payload['trace_id']}", params={"format": "html"})
    assert html.headers["content-type"].startswith("text/html") and "data:image/jpeg" in html.text


def test_ask_json_base64(client: httpx.Client) -> None:
    body = {"image_base64": base64.b64encode(_png(spots_image())).decode(), "question": "How many?"}
    response = client.post("/v1/ask", json=body)
    assert response.status_code == 200 and response.json()["answer"] == "2"


@pytest.mark.parametrize(
    ("kwargs", "status", "message"),
    [
        (
            {"files": {"image": ("a.txt", b"hello", "text/plain")}, "data": {"question": "Q?"}},
            422,
            "not a readable image",
        ),
        (
            {
                "files": {"image": ("a.png", _png(spots_image()), "image/png")},
                "data": {"question": "  "},
            },
            422,
            "empty",
        ),
        ({"files": {"image": ("a.png", _png(spots_image()), "image/png")}}, 422, "question"),
        ({"data": {"question": "Q?"}}, 422, "image"),
        ({"json": {"image_base64": "!!!not base64", "question": "Q?"}}, 422, "bad JSON body"),
        ({"json": {"question": "Q?"}}, 422, "image_base64"),
        ({"content": b"raw", "headers": {"content-type": "text/plain"}}, 415, "multipart"),
    ],
)
def test_bad_requests_are_4xx_with_a_message(
    client: httpx.Client, kwargs: dict, status: int, message: str
) -> None:
    response = client.post("/v1/ask", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_a_50_mb_upload_is_refused(client: httpx.Client) -> None:
    big = b"\0" * (50 * 1024 * 1024)
    response = client.post(
        "/v1/ask", files={"image": ("big.png", big, "image/png")}, data={"question": "Q?"}
    )
    assert response.status_code == 413 and "larger than 5 MB" in response.json()["detail"]


def test_api_key_and_unknown_trace(base_url: str, client: httpx.Client) -> None:
    assert httpx.post(f"{base_url}/v1/ask", json={}).status_code == 401
    wrong = httpx.get(f"{base_url}/v1/traces/x", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401
    assert client.get("/v1/traces/does-not-exist").status_code == 404


def test_concurrent_requests(client: httpx.Client) -> None:
    image = _png(spots_image())

    def ask(i: int) -> str:
        files = {"image": ("s.png", image, "image/png")}
        return client.post("/v1/ask", files=files, data={"question": f"How many ({i})?"}).json()[
            "answer"
        ]

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(ask, range(6))) == ["2"] * 6


def test_metrics_count_requests_and_model_time_per_role(client: httpx.Client) -> None:
    files = {"image": ("spots.png", _png(spots_image()), "image/png")}
    assert client.post("/v1/ask", files=files, data={"question": "How many?"}).status_code == 200
    text = client.get("/metrics").text
    assert 'vpagent_http_requests_total{route="/v1/ask",status="200"}' in text
    assert 'vpagent_tool_call_seconds_count{tool="find"}' in text
    seconds = [line for line in text.splitlines()
               if line.startswith('vpagent_model_seconds_total{role="detector"}')]  # fmt: skip
    assert seconds and float(seconds[0].split()[-1]) > 0
