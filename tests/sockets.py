"""Watch the internet sockets of a process tree and flag any that reach beyond loopback.

:class:`SocketWatch` polls (every 50 ms, in a thread) every TCP/UDP socket of a process and all
its descendants with psutil and records each one it sees; :meth:`SocketWatch.off_loopback` names
the listeners bound to a non-loopback address (``0.0.0.0`` and ``::`` included) and the sockets
whose remote end is not loopback::

    with SocketWatch(proc.pid) as watch:  # or SocketWatch() for this process's own tree
        proc.wait()
    assert not watch.off_loopback(), watch.report()

Polling misses sockets that live less than an interval (a DNS query's UDP socket, say);
:func:`strace_prefix` and :func:`strace_addresses` catch those where ``strace`` may run.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import psutil

from vpagent.loopback import is_loopback, tree_sockets

Address = tuple[str, int]


@dataclass(frozen=True)
class Seen:
    """One socket as psutil showed it; ``raddr`` is None when it has no remote end."""

    pid: int
    name: str
    kind: str  # tcp | udp
    laddr: Address | None
    raddr: Address | None
    status: str

    @property
    def listening(self) -> bool:
        """A TCP listener, or a UDP socket bound to a port without a fixed peer."""
        if self.kind == "tcp":
            return self.status == psutil.CONN_LISTEN
        return self.raddr is None and self.laddr is not None and self.laddr[1] != 0

    @property
    def off_loopback(self) -> bool:
        if self.raddr is not None and not is_loopback(self.raddr[0]):
            return True
        return self.listening and self.laddr is not None and not is_loopback(self.laddr[0])

    def __str__(self) -> str:
        def show(address: Address | None) -> str:
            return "-" if address is None else f"[{address[0]}]:{address[1]}"

        return (
            f"pid {self.pid} ({self.name}) {self.kind} {show(self.laddr)} -> {show(self.raddr)} "
            f"{self.status}"
        )


class SocketWatch:
    """Record every internet socket of ``pid`` (default: this process) and its descendants.

    A context manager: polling starts on entry and stops (after one last poll) on exit.
    ``include_root=False`` leaves the root process out (e.g. the pytest process itself, when
    only the processes it starts are of interest).
    """

    def __init__(
        self, pid: int | None = None, *, interval: float = 0.05, include_root: bool = True
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.interval = interval
        self.include_root = include_root
        self.seen: set[Seen] = set()
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> SocketWatch:
        self.poll()
        self._thread = threading.Thread(target=self._run, name="socket-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def poll(self) -> None:
        """Record the sockets the tree holds right now (processes that vanish are skipped)."""
        for pid, name, connection in tree_sockets(self.pid, self.include_root):
            local, remote = connection.laddr, connection.raddr
            self.pids.add(pid)
            self.seen.add(
                Seen(
                    pid=pid,
                    name=name,
                    kind="tcp" if connection.type == socket.SOCK_STREAM else "udp",
                    laddr=(local.ip, local.port) if local else None,
                    raddr=(remote.ip, remote.port) if remote else None,
                    status=connection.status,
                )
            )

    def listening(self) -> list[Seen]:
        return sorted((s for s in self.seen if s.listening), key=str)

    def off_loopback(self) -> list[Seen]:
        """Listeners on a non-loopback (or wildcard) address; connections to a non-loopback peer."""
        return sorted((s for s in self.seen if s.off_loopback), key=str)

    def report(self) -> str:
        lines = [f"{len(self.seen)} sockets in {len(self.pids)} processes:"]
        lines += [f"  {'OFF ' if s.off_loopback else ''}{s}" for s in sorted(self.seen, key=str)]
        return "\n".join(lines)


def strace_prefix(log: Path) -> list[str]:
    """``strace -f`` of the socket calls into ``log``, or [] where strace is missing or barred."""
    strace = shutil.which("strace")
    if strace is None:
        return []
    probe = subprocess.run([strace, "-f", "-o", os.devnull, "true"], capture_output=True)
    if probe.returncode != 0:  # e.g. ptrace not permitted in this container
        return []
    return [strace, "-f", "-e", "trace=connect,bind,sendto,sendmsg", "-o", str(log)]


_CALL = re.compile(r"\b(connect|bind|sendto|sendmsg)\(\d+, .*?sa_family=(AF_\w+)(.*)")
_PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
_IPV4 = re.compile(r'sin_addr=inet_addr\("([^"]+)"\)')
_IPV6 = re.compile(r'inet_pton\(AF_INET6, "([^"]+)"')


def strace_addresses(log: Path) -> Counter[tuple[str, str, str]]:
    """``(call, family, address)`` -> count over an ``strace`` log; address is ``host:port``
    (``[host]:port`` for IPv6), empty for the other families (AF_UNIX, AF_NETLINK)."""
    found: Counter[tuple[str, str, str]] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        match = _CALL.search(line)
        if match is None:
            continue
        call, family, rest = match.groups()
        address = ""
        if family in ("AF_INET", "AF_INET6"):
            host = _IPV4.search(rest) or _IPV6.search(rest)
            port = _PORT.search(rest)
            name = host.group(1) if host else "?"
            name = f"[{name}]" if family == "AF_INET6" else name
            address = f"{name}:{port.group(1) if port else '?'}"
        found[(call, family, address)] += 1
    return found


def strace_off_loopback(found: Counter[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The internet addresses of an :func:`strace_addresses` count that are not loopback
    (a connect to any port 53 counts as a name lookup, whatever the address)."""
    bad = []
    for call, family, address in found:
        if not address:
            continue
        host, _, port = address.rpartition(":")
        if not is_loopback(host.strip("[]")) or port == "53":
            bad.append((call, family, address))
    return sorted(bad)
