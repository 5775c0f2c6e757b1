"""The planner's prompt prefix, kept on disk: built once, restored by later servers, and
rebuilt when the file is corrupt, unwritable or from another prefix. Real llama.cpp, SmolLM2."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vpagent.llm import packs
from vpagent.llm.embedded import EmbeddedLlamaServer
from vpagent.llm.prefix_cache import WARM_QUESTION, prefix_key, warm_prefix

pytest.importorskip("xllamacpp")

PREFIX = [
    {"role": "system", "content": "You write short Python programs. " * 12},
    {"role": "user", "content": "Question: How many cats are there?"},
    {"role": "assistant", "content": "```python\ndef execute_command(image):\n    return 1\n```"},
]


@pytest.fixture(scope="module")
def model_file() -> Path:
    status = packs.status("smollm2-135m")
    if status.parts_missing:
        pytest.skip(f"the test model is not installed: {status.pip_command}")
    return packs.get_pack("smollm2-135m").parts[0].locate()  # type: ignore[return-value]


def _server(model_file: Path, slot_dir: Path | None) -> EmbeddedLlamaServer:
    return EmbeddedLlamaServer(model_file, n_ctx=1024, threads=1, slot_dir=slot_dir)


def _cached_tokens(server: EmbeddedLlamaServer) -> int:
    reply = server.chat(
        [*PREFIX, {"role": "user", "content": "Question: Is there a dog?"}], max_tokens=1
    )
    return int(reply["usage"]["prompt_tokens_details"]["cached_tokens"])


def test_built_once_then_restored_by_a_new_server(model_file: Path, tmp_path: Path) -> None:
    with _server(model_file, tmp_path) as first:
        built = warm_prefix(first, PREFIX)
        assert built.outcome == "built" and built.tokens > 0
        assert built.path is not None and built.path.is_file()
        assert not list(tmp_path.glob("*.tmp"))  # only the published file and its sidecar
    with _server(model_file, tmp_path) as second:
        restored = warm_prefix(second, PREFIX)
        assert restored.outcome == "restored" and restored.tokens >= built.tokens
        assert _cached_tokens(second) > built.tokens // 2  # the question reuses the prefix


def test_corrupt_file_is_ignored_with_a_warning_and_rebuilt(
    model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _server(model_file, tmp_path) as server:
        path = warm_prefix(server, PREFIX).path
        assert path is not None
        path.write_bytes(b"not a KV cache" * 100)
        with caplog.at_level(logging.WARNING):
            again = warm_prefix(server, PREFIX)
        assert again.outcome == "built"
        assert "checksum" in caplog.text
        assert warm_prefix(server, PREFIX).outcome == "restored"  # the rebuilt file is good


def test_a_file_from_another_prefix_is_never_used(model_file: Path, tmp_path: Path) -> None:
    other = [{**PREFIX[0], "content": "Something else entirely."}, *PREFIX[1:]]
    with _server(model_file, tmp_path) as server:
        assert prefix_key(server, PREFIX) != prefix_key(server, other)
        warm_prefix(server, PREFIX)
        assert warm_prefix(server, other).outcome == "built"


def test_unwritable_folder_costs_only_the_persistence(
    model_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file-not-a-folder"
    blocked.write_text("")
    with _server(model_file, blocked) as server, caplog.at_level(logging.WARNING):
        result = warm_prefix(server, PREFIX)
        assert result.outcome == "built-not-saved"
        assert "could not save" in caplog.text
        assert _cached_tokens(server) > result.tokens // 2  # still cached in memory


def test_without_a_slot_folder_the_prefix_is_computed_in_memory(model_file: Path) -> None:
    with _server(model_file, None) as server:
        result = warm_prefix(server, PREFIX)
        assert result.outcome == "built-not-saved" and result.path is None
        assert WARM_QUESTION not in str(PREFIX)


def test_every_slot_of_a_parallel_server_starts_warm(model_file: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def parallel() -> EmbeddedLlamaServer:
        return EmbeddedLlamaServer(
            model_file, n_ctx=2 * 1024, n_parallel=2, threads=1, slot_dir=tmp_path
        )

    with _server(model_file, tmp_path) as single, parallel() as first:
        assert prefix_key(first, PREFIX) != prefix_key(single, PREFIX)  # llama.cpp refuses it
        built = warm_prefix(first, PREFIX)
    with parallel() as second:
        assert warm_prefix(second, PREFIX).outcome == "restored"
        slots = second._get("/slots")
        assert len(slots) == 2 and {slot["n_ctx"] for slot in slots} == {1024}
        with ThreadPoolExecutor(2) as threads:  # two questions at once: one per slot
            cached = list(threads.map(lambda _: _cached_tokens(second), range(2)))
        assert all(tokens > built.tokens // 2 for tokens in cached), cached
