"""``llamacpp-vlm``: registering local GGUF files by sha256, the server parameters, and the
client path (the embedded server replaced by a loopback fake: no VLM weights ship anywhere)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.fixtures.vlm_fake_server import FakeVLMServer
from vpagent.cli import app
from vpagent.config import load_settings
from vpagent.llm import embedded, local_models, packs
from vpagent.tools.errors import ModelUnavailable
from vpagent.tools.registry import build_specialist
from vpagent.tools.remote_vlm import EmbeddedGGUFVLM
from vpagent.tools.vlm_roles import forget_engines

RED = np.zeros((40, 30, 3), np.uint8)
RED[..., 0] = 200


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("VPAGENT_CACHE_DIR", str(tmp_path / "cache"))
    forget_engines()
    yield
    forget_engines()


def _gguf(path, payload: bytes = b"weights"):
    path.write_bytes(b"GGUF" + payload)
    return path


@pytest.fixture
def files(tmp_path):
    return _gguf(tmp_path / "vlm.gguf", os.urandom(256)), _gguf(tmp_path / "mmproj.gguf")


def test_add_registers_both_files_with_their_sha256(files):
    model, mmproj = files
    entry = local_models.add("my-vlm", model, mmproj, progress=False)
    assert entry.model.sha256 == hashlib.sha256(model.read_bytes()).hexdigest()
    assert entry.mmproj.sha256 == hashlib.sha256(mmproj.read_bytes()).hexdigest()
    saved = json.loads(local_models.registry_path().read_text())
    assert saved["my-vlm"]["mmproj"]["path"] == str(mmproj.resolve())
    assert local_models.verified_files("my-vlm", progress=False) == (
        model.resolve(),
        mmproj.resolve(),
    )


def test_a_changed_file_is_refused(files):
    model, mmproj = files
    local_models.add("my-vlm", model, mmproj, progress=False)
    size = mmproj.stat().st_size
    mmproj.write_bytes(b"GGUF" + b"x" * (size - 4))  # same size, other bytes
    os.utime(mmproj, ns=(1, 1))
    with pytest.raises(local_models.LocalModelError, match="changed since"):
        local_models.verified_files("my-vlm", progress=False)
    vqa = build_specialist("vqa", "llamacpp-vlm", model="my-vlm")
    with pytest.raises(ModelUnavailable, match="changed since"):
        vqa.answer(RED, "what?")


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("my vlm", "ok", "invalid model name"),
        ("smollm2-135m", "ok", "model pack"),
        ("x", "text", "not a GGUF file"),
        ("x", "missing", "does not exist"),
    ],
)
def test_bad_registrations_are_refused(tmp_path, files, name, kind, message):
    model = {"ok": files[0], "missing": tmp_path / "nope.gguf"}.get(kind)
    if kind == "text":
        model = tmp_path / "notes.gguf"
        model.write_text("hello")
    with pytest.raises(local_models.LocalModelError, match=message):
        local_models.add(name, model, files[1], progress=False)


def test_a_name_is_replaced_only_with_force(files):
    local_models.add("v", files[0], files[1], progress=False)
    with pytest.raises(local_models.LocalModelError, match="--force"):
        local_models.add("v", files[0], progress=False)
    assert local_models.add("v", files[0], force=True, progress=False).mmproj is None


def test_cli_add_and_list(files):
    runner = CliRunner()
    model, mmproj = files
    args = ["models", "add", "my-vlm", "--model", str(model), "--mmproj", str(mmproj), "-q"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(model.read_bytes()).hexdigest() in result.output
    listed = json.loads(runner.invoke(app, ["models", "list", "--json"]).output)
    assert [entry["name"] for entry in listed["local"]] == ["my-vlm"]
    bad = runner.invoke(app, ["models", "add", "other", "--model", str(model.parent / "nope")])
    assert bad.exit_code == 2 and "does not exist" in " ".join(bad.output.split())
    assert "Traceback" not in bad.output


def test_server_parameters_carry_the_projector(files):
    local_models.add("my-vlm", *files, progress=False)
    engine = EmbeddedGGUFVLM("my-vlm", {"n_ctx": 2048, "threads": 2, "seed": 3, "mmproj": None})
    parameters = engine.server_parameters()
    assert parameters["model_path"] == files[0].resolve()
    assert parameters["mmproj"] == files[1].resolve()
    assert (parameters["n_ctx"], parameters["threads"], parameters["seed"]) == (2048, 2, 3)
    server = embedded.EmbeddedLlamaServer(**parameters)
    xllamacpp = pytest.importorskip("xllamacpp")
    params = server._params(xllamacpp)
    assert params.mmproj.path == str(files[1].resolve())
    assert params.model.path == str(files[0].resolve())
    assert params.hostnames == ["127.0.0.1"]


def test_a_path_without_mmproj_is_refused(files):
    vqa = build_specialist("vqa", "llamacpp-vlm", model=str(files[0]))
    with pytest.raises(ModelUnavailable, match="no mmproj"):
        vqa.answer(RED, "what?")
    missing = build_specialist(
        "vqa", "llamacpp-vlm", model=str(files[0]), options={"mmproj": "/nowhere/p.gguf"}
    )
    with pytest.raises(ModelUnavailable, match=r"mmproj file /nowhere/p\.gguf does not exist"):
        missing.answer(RED, "what?")


class _LoopbackStandIn:
    """Takes EmbeddedLlamaServer's place, "serving" at the fake endpoint."""

    started: ClassVar[list[dict]] = []

    def __init__(self, fake: FakeVLMServer, **parameters) -> None:
        self.parameters = parameters
        self.base_url = fake.base_url
        self.api_key = "per-server-key"
        self.alias = parameters["alias"]
        self.model_path = parameters["model_path"]
        self.running = False

    def start(self):
        self.running = True
        _LoopbackStandIn.started.append(self.parameters)
        return self


def test_answers_go_through_the_openai_client_to_the_started_server(files, monkeypatch):
    local_models.add("my-vlm", *files, progress=False)
    settings = load_settings(vlm={"provider": "embedded-gguf", "model": "my-vlm"})
    assert settings.tools.vqa.backend == "llamacpp-vlm"
    with FakeVLMServer() as fake:
        monkeypatch.setattr(
            embedded, "EmbeddedLlamaServer", lambda **p: _LoopbackStandIn(fake, **p)
        )
        vqa = build_specialist("vqa", "llamacpp-vlm", model="my-vlm")
        captioner = build_specialist("captioner", "llamacpp-vlm", model="my-vlm")
        assert "not started yet" in vqa.info().note
        assert vqa.answer(RED, "what colour?") == "red 30x40"
        assert captioner.caption(RED) == "red 30x40"
        client = vqa.engine.client()
        assert (client.concurrency, client.timeout_s) == (1, 120.0)  # one server slot
    assert len(_LoopbackStandIn.started) == 1  # one server for both roles
    assert _LoopbackStandIn.started[0]["mmproj"] == files[1].resolve()
    assert fake.headers[0]["authorization"] == "Bearer per-server-key"
    assert fake.requests[0]["model"] == "vlm"


def test_doctor_checks_the_registered_files_and_hints_at_vlms(files):
    from vpagent.doctor import VLM_HINT, diagnose

    offline = {role.role: role for role in diagnose(load_settings()).roles}
    assert offline["vqa"].stand_in and VLM_HINT in offline["vqa"].note
    local_models.add("my-vlm", *files, progress=False)
    settings = load_settings(vlm={"provider": "embedded-gguf", "model": "my-vlm"})
    roles = {role.role: role for role in diagnose(settings).roles}
    for role in ("vqa", "captioner", "matcher"):
        assert roles[role].backend == "llamacpp-vlm" and roles[role].available, roles[role]
    assert not roles["vqa"].stand_in and VLM_HINT not in roles["vqa"].note
    files[0].write_bytes(b"GGUF changed")
    roles = {role.role: role for role in diagnose(settings).roles}
    assert not roles["vqa"].available and "changed since" in roles["vqa"].problem
    ollama = load_settings(vlm={"provider": "ollama", "model": "qwen2.5vl:7b"})
    roles = {role.role: role for role in diagnose(ollama).roles}
    assert roles["vqa"].available and roles["vqa"].model == "qwen2.5vl:7b"


def test_real_llama_cpp_gets_the_projector_and_refuses_a_bogus_one(tmp_path):
    pytest.importorskip("xllamacpp")
    status = packs.status("smollm2-135m")
    if status.parts_missing:
        pytest.skip(f"the test model is not installed: {status.pip_command}")
    language_model = packs.get_pack("smollm2-135m").parts[0].locate()
    bogus = _gguf(tmp_path / "bogus-mmproj.gguf", b"\x03\x00\x00\x00" + os.urandom(512))
    local_models.add("half-a-vlm", language_model, bogus, progress=False)
    vqa = build_specialist(
        "vqa", "llamacpp-vlm", model="half-a-vlm", options={"n_ctx": 512, "threads": 1}
    )
    with pytest.raises(
        ModelUnavailable, match=r"llamacpp-vlm: .*could not load .* with mmproj .*bogus-mmproj"
    ):
        vqa.answer(RED, "what?")


def test_a_touched_but_unchanged_file_is_rehashed_once(files):
    local_models.add("my-vlm", *files, progress=False)
    os.utime(files[1], ns=(5, 5))
    assert local_models.verified_files("my-vlm", progress=False)[1] == files[1].resolve()
    assert local_models.get("my-vlm").mmproj.mtime_ns == 5
