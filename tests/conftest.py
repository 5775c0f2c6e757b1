"""Shared fixtures: the dev photos, a tiny student and its export, settings, and a guard
against off-loopback connections."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

import vpagent  # noqa: F401  (applies the offline environment defaults)

DATA_DIR = Path(os.environ.get("VPAGENT_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "dev.jsonl").is_file():
        pytest.fail(f"the dev data is missing at {DATA_DIR}; set VPAGENT_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def images_dir(data_dir: Path) -> Path:
    return data_dir / "images"


@pytest.fixture(scope="session")
def lm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Llama folder, the embedded student's language model in the tests."""
    from tests.fixtures.student_tiny import build_tiny_lm

    return build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="session")
def export(tmp_path_factory: pytest.TempPathFactory, images_dir: Path) -> Path:
    """A small `distill export` folder on the dev photos (read only: nothing writes into it)."""
    from tests.fixtures.student_tiny import build_export

    return build_export(tmp_path_factory.mktemp("export"), images_dir)


def _is_loopback(address: object) -> bool:
    if not (isinstance(address, tuple) and address):
        return isinstance(address, str | bytes)  # a unix socket path
    host = str(address[0])
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name would need a DNS lookup


class OffLoopbackConnection(AssertionError):
    """A test tried to reach beyond this machine."""


@pytest.fixture(autouse=True)
def no_outside_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test whose code connects (or resolves a name) beyond loopback."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: object) -> object:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OffLoopbackConnection(f"connection to {address!r} attempted")
        return real_connect(sock, address)

    def guarded_connect_ex(sock: socket.socket, address: object) -> object:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
            raise OffLoopbackConnection(f"connection to {address!r} attempted")
        return real_connect_ex(sock, address)

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if host not in (None, "localhost") and not _is_loopback((host,)):
            raise OffLoopbackConnection(f"name lookup of {host!r} attempted")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
