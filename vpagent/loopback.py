"""Loopback facts: is an address loopback, and which sockets a process tree holds.

vpagent promises that nothing it starts listens or connects beyond this machine; these two
functions let the code that starts other programs (Ray) and the tests check it.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from typing import Any


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ::ffff:127.x.y.z; never a wildcard (``0.0.0.0``, ``::``) or a name."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False  # a host name: not an address we can vouch for
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def tree_sockets(
    pid: int | None = None, include_root: bool = True
) -> Iterator[tuple[int, str, Any]]:
    """(pid, process name, psutil connection) for each internet socket of ``pid``'s tree now.

    ``pid`` defaults to this process; processes that exit meanwhile are skipped. psutil sees
    the sockets of this network namespace only.
    """
    import psutil  # installed with Ray

    try:
        root = psutil.Process(os.getpid() if pid is None else pid)
        tree = [root, *root.children(recursive=True)] if include_root else root.children(True)
    except psutil.NoSuchProcess:
        return
    for process in tree:
        try:
            name, connections = process.name(), process.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        for connection in connections:
            yield process.pid, name, connection
