"""VLMs behind an OpenAI-compatible chat endpoint: backends ``openai-vlm`` and ``llamacpp-vlm``.

``openai-vlm`` talks to any OpenAI-compatible server that accepts images (vLLM, Ollama,
llama.cpp's server, LM Studio, OpenAI) through LangChain's ``ChatOpenAI``, the client the
planner uses. Each crop is downscaled to ``max_side`` pixels, encoded (JPEG by default) and
sent as a base64 ``image_url`` content part next to the prompt. Options: ``base_url``
(required: nothing is sent anywhere the user did not name), ``model`` (the server's name for
it), ``api_key_env`` (the environment variable holding the key; empty or unset: no key),
``timeout_s`` (60), ``max_retries`` (1), ``max_side`` (768), ``max_tokens`` (64),
``concurrency`` (4 requests in flight per batch), ``image_format`` ("jpeg" or "png").

``llamacpp-vlm`` starts llama.cpp in this process on 127.0.0.1 (like the embedded planner)
with a GGUF model and its ``mmproj`` projector, and talks to it through the same client.
``model`` is a name registered with ``vpagent models add`` (sha256 checked before use) or a
path to a ``.gguf`` file with the option ``mmproj``; options ``n_ctx`` (4096), ``threads``,
``seed`` (0), plus the client options above except ``base_url`` and ``api_key_env`` (here
``concurrency`` defaults to 1 and ``timeout_s`` to 120: the server has one slot).

Every failure (endpoint down, slow, an HTTP error, a reply that is not a chat completion, a
model that takes no images) is a :class:`RemoteVLMError` naming the backend, the URL and the
cause; waits are bounded by ``timeout_s`` times ``1 + max_retries`` per request.
"""

from __future__ import annotations

import base64
import io
import os
import re
import threading
from pathlib import Path
from typing import Any

from vpagent.tools.errors import ModelUnavailable, ToolError
from vpagent.tools.hf._base import to_pil
from vpagent.tools.roles import Image
from vpagent.tools.vlm_roles import (
    ROLE_OPTIONS,
    VLMVQA,
    VLMCaptioner,
    VLMEngine,
    VLMMatcher,
    VLMRole,
    shared_engine,
)

CLIENT_DEFAULTS: dict[str, Any] = {
    "timeout_s": 60.0,
    "max_retries": 1,
    "max_side": 768,
    "max_tokens": 64,
    "concurrency": 4,
    "image_format": "jpeg",
}
# The embedded server has one slot: requests queue there, so send them one at a time (each
# then gets its own full timeout) and allow a CPU-bound VLM more time per answer.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    **CLIENT_DEFAULTS,
    "concurrency": 1,
    "timeout_s": 120.0,
    "mmproj": None,
    "n_ctx": 4096,
    "threads": None,
    "seed": 0,
}
NO_KEY = "unused"  # servers without auth still want a non-empty key
_NO_VISION = re.compile(r"image|vision|multimodal|mmproj|modalit", re.IGNORECASE)


class RemoteVLMError(ToolError):
    """The VLM endpoint failed; the message names the backend, the URL and the cause."""


def encode_image(image: Image, max_side: int, image_format: str = "jpeg") -> str:
    """A ``data:`` URL of the image, downscaled so its longer side is at most ``max_side``."""
    from PIL import Image as PILImage

    picture = to_pil(image)
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), PILImage.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "png":
        picture.save(buffer, format="PNG")
    else:
        picture.save(buffer, format="JPEG", quality=90)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/{image_format};base64,{encoded}"


def _root_cause(error: BaseException) -> BaseException:
    """The innermost exception of a chain (e.g. ConnectionRefusedError under the clients')."""
    seen = {id(error)}
    while (inner := error.__cause__ or error.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return error


def _options(given: dict[str, Any], defaults: dict[str, Any], backend: str) -> dict[str, Any]:
    unknown = set(given) - set(defaults) - ROLE_OPTIONS
    if unknown:
        raise ValueError(
            f"the {backend} backend has no option(s) {sorted(unknown)}; "
            f"options: {sorted(set(defaults) | ROLE_OPTIONS)}"
        )
    merged = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    if merged.get("image_format") not in (None, "jpeg", "png"):
        raise ValueError(f"{backend}: image_format must be 'jpeg' or 'png'")
    return merged


class OpenAIVLM(VLMEngine):
    """Prompts about images sent to an OpenAI-compatible chat-completions endpoint."""

    def __init__(
        self,
        *,
        backend: str,
        base_url: str,
        model: str,
        api_key: str,
        timeout_s: float,
        max_retries: int,
        max_side: int,
        max_tokens: int,
        concurrency: int,
        image_format: str,
    ) -> None:
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.max_side = int(max_side)
        self.max_tokens = int(max_tokens)
        self.concurrency = max(1, int(concurrency))
        self.image_format = image_format
        self._chat: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._chat is None:
                from vpagent.llm.chat import (
                    _import_chat_openai,
                    _loopback_http_clients,
                    is_loopback_url,
                )

                clients = _loopback_http_clients() if is_loopback_url(self.base_url) else {}
                self._chat = _import_chat_openai()(
                    model=self.model,
                    base_url=self.base_url,
                    api_key=self.api_key,
                    temperature=0.0,
                    seed=0,
                    max_tokens=self.max_tokens,
                    timeout=self.timeout_s,
                    max_retries=self.max_retries,
                    **clients,
                )
            return self._chat

    def _messages(self, image: Image, prompt: str) -> list[Any]:
        from langchain_core.messages import HumanMessage

        url = encode_image(image, self.max_side, self.image_format)
        content = [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": prompt},
        ]
        return [HumanMessage(content=content)]

    def generate(self, images: list[Image], prompts: list[str]) -> list[str]:
        if len(images) != len(prompts):
            raise ValueError("generate: one prompt per image")
        if not images:
            return []
        chat = self._client()
        requests = [
            self._messages(image, prompt) for image, prompt in zip(images, prompts, strict=True)
        ]
        replies = chat.batch(
            requests, config={"max_concurrency": self.concurrency}, return_exceptions=True
        )
        answers: list[str] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                raise self.explain(reply) from reply
            text = getattr(reply, "text", None)
            if not isinstance(text, str):
                raise RemoteVLMError(
                    f"{self.backend}: {self.base_url} sent a reply without text ({reply!r:.200})"
                )
            answers.append(text.strip())
        return answers

    def explain(self, error: BaseException) -> RemoteVLMError:
        """A tool error that says what went wrong with the endpoint, in words."""
        import openai

        where = f"{self.backend} ({self.base_url}, model {self.model!r})"
        if isinstance(error, openai.APITimeoutError):
            return RemoteVLMError(
                f"{where}: no answer within {self.timeout_s:g} s "
                f"(tried {self.max_retries + 1} times); raise timeout_s or check the server"
            )
        if isinstance(error, openai.APIConnectionError):
            return RemoteVLMError(
                f"{where}: cannot connect ({_root_cause(error)}); is the server running?"
            )
        if isinstance(error, openai.APIStatusError):
            message = re.sub(r"^Error code: \d+ - ", "", " ".join(str(error.message).split()))
            message = message[:300]
            hint = ""
            if error.status_code in (401, 403):
                hint = "; check the API key (the variable named by api_key_env)"
            elif error.status_code == 404:
                hint = "; check base_url (ending in /v1) and the model name"
            if _NO_VISION.search(message):
                hint += "; the model may not accept images: configure a vision-language model"
            return RemoteVLMError(f"{where}: HTTP {error.status_code}: {message}{hint}")
        return RemoteVLMError(
            f"{where}: the reply is not an OpenAI chat completion "
            f"({type(error).__name__}: {str(error)[:200]})"
        )

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "weights": None,
            "device": self.base_url,
            "note": f"OpenAI-compatible endpoint; images sent at most {self.max_side} px a side",
        }


class EmbeddedGGUFVLM(VLMEngine):
    """llama.cpp in this process serving a GGUF VLM (+ mmproj) on loopback, as an endpoint."""

    backend = "llamacpp-vlm"

    def __init__(self, model: str, options: dict[str, Any]) -> None:
        self.model = model
        self.options = options
        self._server: Any = None
        self._client: OpenAIVLM | None = None
        self._lock = threading.Lock()

    def files(self) -> tuple[Path, Path]:
        """(model, mmproj): a registered name's verified files, or the paths given."""
        from vpagent.llm import local_models

        given = self.options.get("mmproj")
        mmproj = Path(str(given)).expanduser() if given else None
        try:
            registered = local_models.is_registered(self.model)
            if registered:
                model, projector = local_models.verified_files(self.model)
        except local_models.LocalModelError as error:
            raise ModelUnavailable(f"llamacpp-vlm: {error}") from error
        if registered:
            mmproj = mmproj or projector
        else:
            model = Path(self.model).expanduser()
            if model.suffix != ".gguf" and not model.is_file():
                raise ModelUnavailable(
                    f"llamacpp-vlm: {self.model!r} is neither a registered local model "
                    "(`vpagent models add NAME --model F.gguf --mmproj P.gguf`) nor a .gguf file"
                )
        if mmproj is None:
            raise ModelUnavailable(
                f"llamacpp-vlm: {self.model!r} has no mmproj (image projector) file; a GGUF VLM "
                "needs one: register it with --mmproj or set the option mmproj"
            )
        for path, what in ((model, "model"), (mmproj, "mmproj")):
            if not path.is_file():
                raise ModelUnavailable(f"llamacpp-vlm: the {what} file {path} does not exist")
        return model, mmproj

    def server_parameters(self) -> dict[str, Any]:
        """The keyword arguments of the :class:`EmbeddedLlamaServer` this engine starts."""
        from vpagent.llm.embedded import default_threads

        model, mmproj = self.files()
        return {
            "model_path": model,
            "mmproj": mmproj,
            "n_ctx": int(self.options["n_ctx"]),
            "threads": self.options["threads"] or default_threads(),
            "seed": int(self.options["seed"]),
            "alias": model.stem,
        }

    def client(self) -> OpenAIVLM:
        """The client of the running server, which starts on first use."""
        from vpagent.llm.embedded import EmbeddedLlamaServer, EmbeddedServerError

        with self._lock:
            if self._client is None:
                try:
                    server = EmbeddedLlamaServer(**self.server_parameters()).start()
                except EmbeddedServerError as error:
                    raise ModelUnavailable(f"llamacpp-vlm: {error}") from error
                self._server = server
                self._client = OpenAIVLM(
                    backend=self.backend,
                    base_url=server.base_url,
                    model=server.alias,
                    api_key=server.api_key,
                    **{k: self.options[k] for k in CLIENT_DEFAULTS},
                )
            return self._client

    def generate(self, images: list[Image], prompts: list[str]) -> list[str]:
        return self.client().generate(images, prompts)

    def describe(self) -> dict[str, Any]:
        running = self._server is not None and self._server.running
        return {
            "model": self.model,
            "weights": str(self._server.model_path) if running else None,
            "device": "cpu (llama.cpp)",
            "note": "GGUF VLM + mmproj served by llama.cpp in this process on 127.0.0.1"
            + ("" if running else " (not started yet)"),
        }

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
            self._server, self._client = None, None


def _api_key(backend: str, api_key_env: str | None) -> str:
    if not api_key_env:
        return NO_KEY
    key = os.environ.get(api_key_env, "")
    if not key:
        raise ModelUnavailable(
            f"{backend}: the API key is read from ${api_key_env}, which is not set; export it, "
            "or leave api_key_env empty for a server without a key"
        )
    return key


class _OpenAIRole(VLMRole):
    backend = "openai-vlm"

    def _make_engine(self) -> VLMEngine:
        base_url = self.options.get("base_url")
        if not base_url:
            raise ModelUnavailable(
                "openai-vlm: no base_url; set the endpoint explicitly, e.g. "
                "http://127.0.0.1:11434/v1 (Ollama) or http://127.0.0.1:8000/v1 (vLLM)"
            )
        if not self.model:
            raise ModelUnavailable("openai-vlm: no model; set the server's name for the VLM")
        given = {k: v for k, v in self.options.items() if k not in ("base_url", "api_key_env")}
        client = _options(given, CLIENT_DEFAULTS, self.backend)
        api_key_env = self.options.get("api_key_env") or ""
        key = ("openai-vlm", str(base_url), self.model, api_key_env, tuple(sorted(client.items())))
        return shared_engine(
            key,
            lambda: OpenAIVLM(
                backend=self.backend,
                base_url=str(base_url),
                model=str(self.model),
                api_key=_api_key(self.backend, api_key_env),
                **client,
            ),
        )


class _EmbeddedRole(VLMRole):
    backend = "llamacpp-vlm"

    def _make_engine(self) -> VLMEngine:
        if not self.model:
            raise ModelUnavailable(
                "llamacpp-vlm: no model; give a name registered with `vpagent models add` "
                "or a .gguf path (with the option mmproj)"
            )
        options = _options(self.options, EMBEDDED_DEFAULTS, self.backend)
        key = ("llamacpp-vlm", self.model, tuple(sorted((k, str(v)) for k, v in options.items())))
        return shared_engine(key, lambda: EmbeddedGGUFVLM(str(self.model), options))


class OpenAIVLMVQA(_OpenAIRole, VLMVQA):
    """``simple_query`` by a VLM behind an OpenAI-compatible endpoint."""


class OpenAIVLMCaptioner(_OpenAIRole, VLMCaptioner):
    """``caption`` by a VLM behind an OpenAI-compatible endpoint."""


class OpenAIVLMMatcher(_OpenAIRole, VLMMatcher):
    """``verify_property`` by a VLM behind an OpenAI-compatible endpoint."""


class EmbeddedVLMVQA(_EmbeddedRole, VLMVQA):
    """``simple_query`` by a GGUF VLM served in-process by llama.cpp."""


class EmbeddedVLMCaptioner(_EmbeddedRole, VLMCaptioner):
    """``caption`` by a GGUF VLM served in-process by llama.cpp."""


class EmbeddedVLMMatcher(_EmbeddedRole, VLMMatcher):
    """``verify_property`` by a GGUF VLM served in-process by llama.cpp."""
