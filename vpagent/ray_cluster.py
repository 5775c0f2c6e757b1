"""Starting Ray for vpagent: a private Ray on loopback, or a cluster the user names.

A private Ray (no address given) is started so that nothing of it can be reached from another
machine, and nothing on this one can use it without its token:

- ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` and ``_node_ip_address="127.0.0.1"``: Ray's
  single-machine mode. Every Ray process listens on 127.0.0.1 and talks over loopback; without
  it the GCS, raylet and workers listen on every interface and Ray probes 8.8.8.8 to learn the
  machine's address.
- ``RAY_AUTH_MODE=token`` with a fresh random ``RAY_AUTH_TOKEN`` for this run only.
- no dashboard, no usage stats, and HOME pointing at a folder whose
  ``ray_bootstrap_config.yaml`` says ``provider: {type: local}`` (no cloud metadata probes).
- after start, every listening socket of the Ray processes is checked: one off loopback stops
  Ray and raises :class:`RayStartError`.

A cluster (``address`` given) is joined as it is: the user started and secured it. vpagent
never turns authentication off for it and refuses to join while ``RAY_AUTH_MODE=disabled``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vpagent.loopback import is_loopback, tree_sockets
from vpagent.offline_env import cache_root

INSTALL_HINT = "Ray is not installed: pip install 'vpagent[scale]'"
LOOPBACK = "127.0.0.1"

# What start_ray changed for a private Ray, restored by stop_ray.
_saved_env: dict[str, str | None] = {}
_saved_constant: dict[str, bool] = {}
_temporary_homes: list[str] = []


class RayStartError(RuntimeError):
    """Ray could not be started or joined safely; the message says why."""


def local_ray_env() -> dict[str, str]:
    """The environment of a private, loopback-only Ray with a token of its own."""
    return {
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # Ray's single-machine (loopback) mode
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
    }


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayStartError(INSTALL_HINT) from None
    return ray


@contextmanager
def _local_home() -> Iterator[None]:
    """HOME -> a folder holding ``ray_bootstrap_config.yaml`` while Ray starts its processes.

    The caches HOME would otherwise locate are pinned first, so workers still find models. Ray's
    processes keep that HOME for their lives, so the folder stays until :func:`stop_ray`.
    """
    previous = os.environ.get("HOME")
    os.environ.setdefault("VPAGENT_CACHE_DIR", str(cache_root()))
    if previous:
        os.environ.setdefault("XDG_CACHE_HOME", str(Path(previous) / ".cache"))
    home = tempfile.mkdtemp(prefix="vpagent-ray-home-")
    _temporary_homes.append(home)
    Path(home, "ray_bootstrap_config.yaml").write_text("provider:\n  type: local\n")
    os.environ["HOME"] = home
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = previous


def ray_listening_addresses() -> list[tuple[str, str, int]]:
    """(process name, address, port) of every listener of this process and its children."""
    import psutil

    return [
        (name, connection.laddr.ip, connection.laddr.port)
        for _pid, name, connection in tree_sockets()
        if connection.status == psutil.CONN_LISTEN
    ]


def _start_local(ray: Any, num_cpus: int | None) -> None:
    from ray._private import ray_constants

    # Read from the environment when Ray is first imported: set it here too in case Ray was
    # imported before start_ray set the environment. The socket check below is the guarantee.
    _saved_constant.setdefault("ENABLE_RAY_CLUSTER", ray_constants.ENABLE_RAY_CLUSTER)
    ray_constants.ENABLE_RAY_CLUSTER = False
    with _local_home():
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=False,
            _node_ip_address=LOOPBACK,
        )
    exposed = [entry for entry in ray_listening_addresses() if not is_loopback(entry[1])]
    if exposed:
        ray.shutdown()
        shown = ", ".join(f"{name} on {host}:{port}" for name, host, port in exposed[:5])
        raise RayStartError(f"refusing to run: the local Ray listens off loopback ({shown})")


def _join(ray: Any, address: str) -> None:
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "disabled":
        raise RayStartError(
            "RAY_AUTH_MODE=disabled: vpagent does not join a Ray cluster without "
            "authentication. Start the cluster with RAY_AUTH_MODE=token and give this "
            "process its token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        )
    ray.init(address=address, configure_logging=False, log_to_driver=False)


def start_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a private loopback Ray, or join the cluster at ``address``; no-op if running.

    ``num_cpus`` applies to a private Ray only.
    """
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return
    if address is None:
        environment = local_ray_env()
        for key, value in environment.items():
            _saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value  # set before Ray is imported: read at import time
    try:
        ray = _import_ray()
        _reload_auth_settings()
        if address is None:
            _start_local(ray, num_cpus)
        else:
            _join(ray, address)
    except BaseException:
        stop_ray()
        raise


def stop_ray() -> None:
    """Shut Ray down and restore the environment a private Ray changed."""
    if "ray" in sys.modules:
        sys.modules["ray"].shutdown()
    while _saved_env:
        key, value = _saved_env.popitem()
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if _saved_constant:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = _saved_constant.pop("ENABLE_RAY_CLUSTER")
    if "ray" in sys.modules:
        _reload_auth_settings()
    while _temporary_homes:
        shutil.rmtree(_temporary_homes.pop(), ignore_errors=True)


def _reload_auth_settings() -> None:
    """Make this process's Ray core read RAY_AUTH_* again: it caches them on first use."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
