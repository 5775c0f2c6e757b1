"""A deliberately leaky program API, for tests and audits of the process layer only.

The real API (``vpagent.tools.image_patch``) gives a program nothing but image patches. This one
also hands it live module objects (``os``, ``sys``, ``socket``, ``ctypes``, ...) and the real
``open``: exactly what a program would hold after a complete escape from the AST check. Tests
point :class:`~vpagent.sandbox.executor.SandboxExecutor` at :func:`build_escaped_api` to show
that the second layer (audit hook, rlimits, unprivileged uid, chroot, no network) contains
such a program on its own. Never use it to run real programs.
"""

from __future__ import annotations

import builtins
import ctypes
import os
import signal
import socket
import subprocess
import sys
from typing import Any

from vpagent.tools.image_patch import HostCall, ImagePatch, build_program_api


def build_escaped_api(call: HostCall, image: dict[str, Any]) -> tuple[ImagePatch, dict[str, Any]]:
    """The normal API plus the objects an escaped program would reach for."""
    root, names = build_program_api(call, image)
    leaked = {
        "os_module": os,
        "sys_module": sys,
        "socket_module": socket,
        "ctypes_module": ctypes,
        "signal_module": signal,
        "subprocess_module": subprocess,
        "builtins_module": builtins,
        "open_file": builtins.open,
    }
    return root, {**names, **leaked}
