"""llama.cpp in this process, serving an OpenAI-compatible API on 127.0.0.1.

:class:`EmbeddedLlamaServer` wraps ``xllamacpp.Server``: the model is loaded once, the HTTP
server listens on a free loopback port, and the planner talks to it through the same
OpenAI-compatible client as to any remote model. Each server gets a random API key, so other
local users and browser pages (llama.cpp allows any CORS origin) cannot use it.

xllamacpp facts this relies on (xllamacpp 2026.x):

- ``Server(params)`` blocks until the model is loaded and the socket listens; with ``port = 0``
  the OS picks a free port and ``listening_address`` reports it.
- The server stops when the ``Server`` object is deallocated. Its task loop starts just after
  the constructor returns; deallocating it before the loop runs hangs forever, so ``start``
  waits for a request that goes through the loop (``GET /slots``) before returning.
- A live ``Server`` keeps the interpreter from exiting: every server is stopped at exit.
"""

from __future__ import annotations

import atexit
import gc
import ipaddress
import json
import os
import secrets
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

DEFAULT_THREADS_CAP = 8  # token generation is memory-bound: more threads stop helping
READY_POLL_SECONDS = 0.05
PROBE_TIMEOUT_SECONDS = 5.0

# Never let urllib send a loopback probe through an HTTP(S)_PROXY from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_LIVE: weakref.WeakSet[EmbeddedLlamaServer] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class EmbeddedServerError(RuntimeError):
    """The embedded llama.cpp server could not start or answer."""


def default_threads() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, DEFAULT_THREADS_CAP))


def _import_xllamacpp() -> Any:
    try:
        import xllamacpp
    except ImportError as error:
        raise EmbeddedServerError(
            "the embedded LLM needs xllamacpp: pip install 'vpagent[offline]' "
            "(or pip install xllamacpp), or configure llm.provider = 'openai' / 'ollama'"
        ) from error
    return xllamacpp


class EmbeddedLlamaServer:
    """A GGUF model served by llama.cpp on ``127.0.0.1:<free port>``, in this process.

    Use as a context manager, or call :meth:`start` and :meth:`stop`; servers still running
    when the interpreter exits are stopped then. ``base_url`` (ending in ``/v1``) and
    ``api_key`` are what an OpenAI-compatible client needs.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = 4096,
        threads: int | None = None,
        seed: int = 0,
        alias: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        n_parallel: int = 1,
        verbosity: int = 0,
        startup_timeout_s: float = 120.0,
        mmproj: str | Path | None = None,
        slot_dir: str | Path | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the embedded server binds to loopback only, not {host!r}")
        self.model_path = Path(model_path)
        self.mmproj = Path(mmproj) if mmproj is not None else None  # a VLM's image projector
        self.n_ctx = n_ctx
        self.threads = threads or default_threads()
        self.seed = seed
        self.alias = alias or self.model_path.stem
        self.host = host
        self.port = port
        self.api_key = api_key if api_key is not None else secrets.token_urlsafe(24)
        self.n_parallel = n_parallel
        self.verbosity = verbosity
        self.startup_timeout_s = startup_timeout_s
        self.slot_dir = Path(slot_dir) if slot_dir is not None else None  # slot save/restore
        self.load_seconds: float | None = None
        self._server: Any = None
        self._url: str | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def _params(self, xllamacpp: Any) -> Any:
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        if self.mmproj is not None:
            params.mmproj.path = str(self.mmproj)
        params.model_alias = {self.alias}
        params.n_ctx = self.n_ctx
        params.n_parallel = self.n_parallel
        if self.slot_dir is not None:
            params.slot_save_path = f"{self.slot_dir}/"  # llama.cpp prepends it to file names
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.sampling.seed = self.seed
        params.hostnames = [self.host]
        params.port = self.port
        params.api_keys = [self.api_key]
        params.offline = True  # never fetch anything from a model hub
        params.ui = False
        params.verbosity = self.verbosity
        return params

    def start(self) -> EmbeddedLlamaServer:
        """Load the model and wait until the server answers; a no-op when running."""
        with self._lock:
            if self._server is not None:
                return self
            if not self.model_path.is_file():
                raise EmbeddedServerError(f"GGUF file {self.model_path} does not exist")
            if self.mmproj is not None and not self.mmproj.is_file():
                raise EmbeddedServerError(f"mmproj file {self.mmproj} does not exist")
            xllamacpp = _import_xllamacpp()
            started = time.perf_counter()
            try:
                server = xllamacpp.Server(self._params(xllamacpp))
            except RuntimeError as error:
                projector = f" with mmproj {self.mmproj}" if self.mmproj is not None else ""
                raise EmbeddedServerError(
                    f"llama.cpp could not load {self.model_path}{projector} (n_ctx={self.n_ctx}): "
                    f"{error}; is it a valid GGUF file{' pair' if projector else ''}? Run with "
                    "verbosity=1 to see llama.cpp's log."
                ) from error
            self._server = server
            self._url = str(server.listening_address).rstrip("/")
            try:
                self._wait_until_serving(started)
            except BaseException:
                self._stop_locked()
                raise
            self.load_seconds = time.perf_counter() - started
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def _wait_until_serving(self, started: float) -> None:
        # /slots is answered by the task loop itself, so a reply proves the loop is running
        # (and that stopping the server now cannot hang).
        deadline = started + self.startup_timeout_s
        last_error: Exception | None = None
        while time.perf_counter() < deadline:
            try:
                self._get("/slots")
                return
            except (OSError, EmbeddedServerError) as error:
                last_error = error
                time.sleep(READY_POLL_SECONDS)
        raise EmbeddedServerError(
            f"the embedded server at {self._url} did not become ready within "
            f"{self.startup_timeout_s:.0f} s: {last_error}"
        )

    def stop(self) -> None:
        """Stop serving and free the model; safe to call twice."""
        with self._lock:
            self._stop_locked()
        with _LIVE_LOCK:
            _LIVE.discard(self)

    def _stop_locked(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            del server  # the only reference: xllamacpp stops the loop and joins its thread
            gc.collect()

    def __enter__(self) -> EmbeddedLlamaServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"serving at {self._url}" if self.running else "stopped"
        return f"EmbeddedLlamaServer({str(self.model_path)!r}, {state})"

    # -- addresses and probes ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, the server root."""
        if self._url is None or not self.running:
            raise EmbeddedServerError("the embedded server is not running; call start()")
        return self._url

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible API root, ``http://127.0.0.1:<port>/v1``."""
        return self.url + "/v1"

    @property
    def bound_port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _get(self, route: str) -> Any:
        request = urllib.request.Request(
            (self._url or "") + route, headers={"Authorization": f"Bearer {self.api_key}"}
        )
        try:
            with _OPENER.open(request, timeout=PROBE_TIMEOUT_SECONDS) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            raise EmbeddedServerError(f"GET {route}: HTTP {error.code}") from error

    def health(self) -> bool:
        """True when the server answers ``/health`` with ``ok``."""
        try:
            return self._get("/health").get("status") == "ok"
        except (OSError, EmbeddedServerError, ValueError):
            return False

    def _post(self, route: str, body: dict[str, Any], timeout: float) -> Any:
        request = urllib.request.Request(
            self.url + route,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.api_key}"},
        )
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise EmbeddedServerError(f"POST {route}: HTTP {error.code}: {detail}") from error

    def chat(
        self, messages: list[dict[str, Any]], *, timeout: float = 300.0, **options: Any
    ) -> dict[str, Any]:
        """One chat completion over HTTP without LangChain (diagnostics, warm-up, benchmarks)."""
        body = {"model": self.alias, "messages": messages, **options}
        return self._post("/v1/chat/completions", body, max(self.startup_timeout_s, timeout))

    def save_slot(self, filename: str, slot: int = 0) -> dict[str, Any]:
        """Write slot ``slot``'s KV cache to ``slot_dir/filename`` (a bare file name)."""
        return self._slot_action("save", filename, slot)

    def restore_slot(self, filename: str, slot: int = 0) -> dict[str, Any]:
        """Load ``slot_dir/filename`` into slot ``slot``; EmbeddedServerError if it is unusable."""
        return self._slot_action("restore", filename, slot)

    def _slot_action(self, action: str, filename: str, slot: int) -> dict[str, Any]:
        if self.slot_dir is None:
            raise EmbeddedServerError("this server was started without a slot_dir")
        if Path(filename).name != filename:
            raise ValueError(f"slot file names are bare names, not paths: {filename!r}")
        return self._post(f"/slots/{slot}?action={action}", {"filename": filename}, 120.0)


def stop_all() -> None:
    """Stop every embedded server of this process (registered with :mod:`atexit`)."""
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop()


atexit.register(stop_all)
