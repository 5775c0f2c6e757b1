"""Typed settings: a TOML file plus ``VPAGENT_*`` environment variables.

Precedence, highest first: keyword arguments, environment (``VPAGENT_PROFILE``,
``VPAGENT_TOOLS__DETECTOR__BACKEND``...), the TOML file (``--config``, ``VPAGENT_CONFIG`` or
``./vpagent.toml``), then the profile's defaults. Unknown keys are errors that name the key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from vpagent.llm.config import LLMConfig
from vpagent.sandbox.limits import SandboxLimits
from vpagent.tools.config import (
    BatchingConfig,
    CacheConfig,
    ToolboxConfig,
    ToolsConfig,
)
from vpagent.tools.registry import BACKENDS

ROLES = tuple(BACKENDS)  # the tool registry is the one list of roles
AnswerMode = Literal["program", "student", "student-then-program"]
ANSWER_MODES: tuple[str, ...] = get_args(AnswerMode)  # who answers a question
Profile = Literal["offline", "hf"]

PROFILE_TOOLS: dict[str, dict[str, dict[str, Any]]] = {
    "offline": {
        "detector": {"backend": "ssd-coco"},
        "segmenter": {"backend": "grabcut"},
        "matcher": {"backend": "classifier-minilm"},
        "captioner": {"backend": "scene-description"},
        "vqa": {"backend": "scene-description-llm"},
        "ocr": {"backend": "rapidocr"},
        "depth": {"backend": "vertical-position"},
        "faces": {"backend": "haar"},
    },
    "hf": {
        "detector": {"backend": "owlvit", "model": "google/owlv2-base-patch16-ensemble"},
        "segmenter": {"backend": "sam-hf", "model": "facebook/sam-vit-base"},
        "matcher": {"backend": "clip", "model": "openai/clip-vit-large-patch14"},
        "captioner": {"backend": "blip", "model": "Salesforce/blip-image-captioning-large"},
        "vqa": {"backend": "blip-vqa", "model": "Salesforce/blip-vqa-capfilt-large"},
        "ocr": {"backend": "rapidocr"},
        "depth": {"backend": "dpt", "model": "Intel/dpt-large"},
        "faces": {"backend": "haar"},
    },
}


class ConfigError(ValueError):
    """The configuration is invalid; the message names each bad key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentConfig(_Strict):
    """How the agent plans: examples per prompt, fixes, repairs, self-consistency."""

    fixed_examples: int = Field(
        11,
        ge=0,
        le=40,
        description="Examples in the static prompt prefix: the bank's curated ones, then one of "
        "each kind in turn.",
    )
    examples_per_prompt: int = Field(
        0, ge=0, le=20, description="Examples retrieved by similarity, after the prefix."
    )
    api_spec: Literal["compact", "full"] = Field(
        "compact",
        description="The API in the prompt: one line per function, or whole docstrings.",
    )
    prefill_reply: bool = Field(
        True,
        description=(
            "embedded LLM: the reply starts with the function's first line and stops at the "
            "end of the code block."
        ),
    )
    example_banks: list[Path] = Field(
        default_factory=list,
        description="Extra example banks (TOML, e.g. from `vpagent distill examples`).",
    )
    max_fixes: int = Field(2, ge=0, description="Replies sent back for holding no valid program.")
    plan_max_tokens: int | None = Field(
        256,  # about 1.7x the longest program of the example bank (458 characters, ~150 tokens)
        ge=16,
        description=(
            "Most tokens one planner reply may have (below llm.max_tokens): a reply that "
            "repeats itself is cut here and sent back, instead of running to llm.max_tokens. "
            "None: llm.max_tokens."
        ),
    )
    plan_stop_repeats: int = Field(
        4,
        ge=0,
        description=(
            "Cut a planner reply as soon as it ends in one piece of text this many times in a "
            "row (a model caught in a loop; the reply streams in); planning ends there and the "
            "fallback answers, since a greedy model sent its loop back loops again. 0: never "
            "(only plan_max_tokens ends such a reply, which is sent back like any broken one)."
        ),
    )
    max_repairs: int = Field(2, ge=0, description="New programs after one fails at run time.")
    repair_answer_form: bool = Field(
        False,
        description=(
            "Re-plan a program whose answer is not of the kind the question asks for (yes/no "
            "for 'what ...?'). Off: the fallback answers at once, since the embedded 1.5B "
            "planner fixed 1 of 16 such programs in the committed runs (with a constant "
            "answer); turn on for a planner that can."
        ),
    )
    samples: int = Field(1, ge=1, le=9, description="Programs voted on (self-consistency).")
    deadline_s: float | None = Field(
        12.0,  # the 20 s ceiling of issue 33 less one fallback call (benchmarks/results/tail.md)
        gt=0,
        description=(
            "A question's time budget: no repair round or further sample starts that would end "
            "past it, and a planner reply still being written then is cut; the best answer so "
            "far (or the fallback's) returns, unverified, with the reason. None: no budget."
        ),
    )
    plan_cache_dir: Path | None = None
    warm_tools: bool = Field(
        True,
        description=(
            "Load every specialist when the agent starts, not at the first question that "
            "needs it (5 s on the offline pack; a stand-in VQA and remote models are left "
            "out). Only for the configured LLM (not a chat model handed to build_agent), not "
            "in student mode (the program path starts with its first question) and not for "
            "`vpagent ask`'s one question."
        ),
    )
    mode: AnswerMode = Field(
        "program", description="Who answers: a program, a trained student, or the student first."
    )
    student: Path | None = Field(None, description="Trained student folder (distill train).")
    student_threshold: float = Field(
        0.85,  # `distill calibrate` on the issue-21 grid-eyes student (docs/student.md, "Use")
        ge=0,
        le=1,
        description="student-then-program: least confidence the student needs.",
    )

    @field_validator("plan_stop_repeats")
    @classmethod
    def _a_loop_repeats_at_least_twice(cls, value: int) -> int:
        if value == 1:
            raise ValueError("plan_stop_repeats is 0 (never cut) or at least 2")
        return value

    @model_validator(mode="after")
    def _student_for_mode(self) -> AgentConfig:
        if self.mode != "program" and self.student is None:
            raise ValueError(f"agent.mode = {self.mode!r} needs agent.student (a folder)")
        return self


class ServerConfig(_Strict):
    """`vpagent serve` and `vpagent ui`: loopback by default."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    ui_port: int = Field(7860, ge=0, le=65535)
    max_upload_mb: int = Field(20, ge=1, le=1024)
    api_key_env: str | None = Field(None, description="Env var holding the HTTP API key.")
    max_concurrent: int | None = Field(
        None, ge=1, description="Questions answered at once (default: llm.parallel)."
    )
    max_queue: int = Field(16, ge=0, description="Questions waiting beyond those; then 429.")
    request_timeout_s: float = Field(
        300.0, gt=0, description="A request's deadline, queueing included; then 504."
    )
    tune_malloc: bool = Field(
        True,
        description=(
            "Where the C library is glibc, cap the serving process's malloc arenas and fix its "
            "large-buffer threshold (a quarter less heap under the soak, same speed: "
            "benchmarks/results/soak-8k-glibc-*.md). False: the C library's defaults."
        ),
    )


class RayConfig(_Strict):
    """Where ``--ray`` runs: a private Ray on loopback, or a cluster the user secured."""

    address: str | None = Field(
        None,
        description="Join this Ray cluster (e.g. 'ray://head:10001'); it must use token "
        "authentication. Unset: a private Ray on 127.0.0.1 with a token of its own.",
    )


VLMProvider = Literal["embedded-gguf", "openai", "ollama", "transformers"]
VLM_PROVIDER_BACKENDS = {
    "embedded-gguf": "llamacpp-vlm",
    "openai": "openai-vlm",
    "ollama": "openai-vlm",
    "transformers": "vlm",
}
DEFAULT_OLLAMA_VLM = "qwen2.5vl:3b"
VLMRole = Literal["vqa", "captioner", "verify_property"]


class VLMConfig(_Strict):
    """One vision-language model for ``simple_query``, ``caption`` and ``verify_property``.

    Fills ``[tools.vqa]``, ``[tools.captioner]`` and ``[tools.matcher]`` (verify_property as a
    yes/no question; scores still from the matcher configured or defaulted there) unless the
    user set that role's backend explicitly. See docs/vlm.md.
    """

    provider: VLMProvider = Field(
        description=(
            "embedded-gguf: a GGUF VLM + mmproj served by llama.cpp in this process; "
            "openai: any OpenAI-compatible endpoint (vLLM, llama.cpp, LM Studio, OpenAI); "
            "ollama: Ollama's OpenAI-compatible endpoint; transformers: an image-text-to-text "
            "checkpoint (hub id or local folder)."
        )
    )
    model: str | None = Field(
        None,
        description=(
            "embedded-gguf: a name from `vpagent models add` or a .gguf path; transformers: "
            f"hub id or folder; openai/ollama: the server's model name (ollama default "
            f"{DEFAULT_OLLAMA_VLM!r})."
        ),
    )
    base_url: str | None = Field(None, description="Endpoint ending in /v1 (openai, ollama).")
    api_key_env: str | None = Field(
        None, description="Env var holding the key (openai default OPENAI_API_KEY; '' = none)."
    )
    mmproj: str | None = Field(None, description="embedded-gguf: the projector .gguf path.")
    roles: list[VLMRole] = Field(
        default_factory=lambda: ["vqa", "captioner", "verify_property"],
        description="Which of simple_query (vqa), caption and verify_property the VLM serves.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options (timeout_s, max_side, max_new_tokens, dtype, prompts...).",
    )

    @model_validator(mode="after")
    def _check_provider(self) -> VLMConfig:
        remote = self.provider in ("openai", "ollama")
        if self.model is None and self.provider != "ollama":
            raise ValueError(f"vlm.model is required for the {self.provider} provider")
        if self.provider == "openai" and not self.base_url:
            raise ValueError(
                "vlm.base_url is required for the openai provider (nothing is sent to an "
                "endpoint you did not name), e.g. 'http://127.0.0.1:8000/v1'"
            )
        if not remote and (self.base_url or self.api_key_env):
            raise ValueError("vlm.base_url and vlm.api_key_env apply to openai and ollama only")
        if self.mmproj and self.provider != "embedded-gguf":
            raise ValueError("vlm.mmproj applies to the embedded-gguf provider only")
        return self

    def role_config(self) -> dict[str, Any]:
        """The ``[tools.<role>]`` table this VLM stands for (backend, model, options)."""
        from vpagent.llm.config import DEFAULT_OLLAMA_URL

        options = dict(self.options)
        model = self.model
        if self.provider in ("openai", "ollama"):
            default_env = "OPENAI_API_KEY" if self.provider == "openai" else ""
            options["base_url"] = self.base_url or DEFAULT_OLLAMA_URL
            options["api_key_env"] = (
                self.api_key_env if self.api_key_env is not None else default_env
            )
            model = model or DEFAULT_OLLAMA_VLM
        if self.mmproj:
            options["mmproj"] = self.mmproj
        return {"backend": VLM_PROVIDER_BACKENDS[self.provider], "model": model, "options": options}


def _explicit(given: Any) -> dict[str, Any] | None:
    """A role table as a dict when the user chose its backend, else None."""
    if isinstance(given, BaseModel):
        given = given.model_dump()
    return given if isinstance(given, dict) and "backend" in given else None


def _apply_vlm(raw: Any, tools: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Fill the vqa, captioner and matcher tables from ``[vlm]`` where not set explicitly."""
    try:
        vlm = raw if isinstance(raw, VLMConfig) else VLMConfig.model_validate(raw)
    except ValidationError:
        return tools  # the ``vlm`` field's own validation reports it, naming the keys
    table = vlm.role_config()
    for role in ("vqa", "captioner"):
        given = tools.get(role)
        if role in vlm.roles and _explicit(given) is None:
            tools[role] = {**table, **(given or {})}
    if "verify_property" in vlm.roles:
        given = tools.get("matcher")
        base = _explicit(given) or {**defaults["matcher"], **(given or {})}
        if base["backend"] not in VLM_PROVIDER_BACKENDS.values():
            base_options = {
                "base_backend": base["backend"],
                "base_options": dict(base.get("options") or {}),
            }
            if base.get("model"):
                base_options["base_model"] = base["model"]
            tools["matcher"] = {**table, "options": {**table["options"], **base_options}}
    return tools


class Settings(BaseSettings):
    """All of vpagent's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="VPAGENT_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    profile: Profile = "offline"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    tools: ToolsConfig
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    agent: AgentConfig = Field(default_factory=AgentConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    vlm: VLMConfig | None = None
    trace_dir: Path | None = None

    def toolbox_config(self) -> ToolboxConfig:
        """What the toolbox reads of these settings."""
        return ToolboxConfig(
            tools=self.tools,
            cache=self.cache,
            batching=self.batching,
            device=self.device,
            llm_identity=self.llm.model_dump(
                mode="json", include={"provider", "model", "base_url"}
            ),
        )

    @model_validator(mode="before")
    @classmethod
    def _fill_profile_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        profile = data.get("profile", "offline")
        defaults = PROFILE_TOOLS.get(profile, PROFILE_TOOLS["offline"])
        tools = dict(data.get("tools") or {})
        if data.get("vlm") is not None:
            tools = _apply_vlm(data["vlm"], tools, defaults)
        for role, default in defaults.items():
            given = tools.get(role)
            if given is None:
                tools[role] = dict(default)
            elif isinstance(given, dict) and "backend" not in given:
                tools[role] = {**default, **given}
        return {**data, "tools": tools}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def _config_file() -> Path | None:
    if os.environ.get("VPAGENT_CONFIG"):
        return Path(os.environ["VPAGENT_CONFIG"])
    local = Path("vpagent.toml")
    return local if local.is_file() else None


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        lines.append(f"  {key}: {item['msg']}")
    return "invalid vpagent configuration:\n" + "\n".join(lines)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; raise :class:`ConfigError` naming each bad key."""
    config_file = config_file or _config_file()
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"config file not found: {config_file}")
    settings_cls = type(
        "Settings",
        (Settings,),
        {"model_config": {**Settings.model_config, "toml_file": config_file}},
    )
    try:
        return settings_cls(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # e.g. malformed TOML or an unparsable env value
        raise ConfigError(f"invalid vpagent configuration: {error}") from None
