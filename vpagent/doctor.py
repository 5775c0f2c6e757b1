"""`vpagent doctor`: what serves each role, and whether it can run here."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

import vpagent
from vpagent.config import ROLES, Settings
from vpagent.sandbox.executor import SandboxExecutor
from vpagent.tools.errors import ToolError
from vpagent.tools.toolbox import Toolbox


class RoleReport(BaseModel):
    role: str
    backend: str
    model: str = ""
    weights: str | None = None
    device: str = ""
    stand_in: bool = False
    available: bool
    problem: str = ""
    note: str = ""


class DoctorReport(BaseModel):
    version: str
    profile: str
    roles: list[RoleReport]
    sandbox_isolation: list[str]


def _weights_problem(weights: str | None) -> str:
    """A message if the weights are a local path that does not exist or a hub id not cached."""
    if not weights:
        return ""
    path = Path(weights)
    if path.is_absolute() or weights.startswith("."):
        return "" if path.exists() else f"weights missing at {weights}"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(weights, "config.json"), str):
        return ""
    return f"'{weights}' is not in the local Hugging Face cache (download it or set a folder)"


VLM_HINT = (
    "for a real vision-language model behind simple_query, caption and verify_property, "
    "set [vlm] (Ollama, vLLM, a local GGUF VLM + mmproj, or a transformers checkpoint; "
    "see docs/vlm.md)"
)


def _vlm_problem(specialist: object, backend: str) -> str | None:
    """For the VLM backends: the local GGUF files' check (None: not a GGUF/endpoint backend).

    An endpoint is not called by doctor; the registered GGUF files are checked (sha256 when
    they changed on disk) without starting llama.cpp.
    """
    if backend == "openai-vlm":
        return ""
    if backend == "llamacpp-vlm":
        try:
            specialist.engine.files()  # type: ignore[attr-defined]
        except ToolError as error:
            return str(error)
        return ""
    return None


def diagnose(settings: Settings) -> DoctorReport:
    """Build (without loading models) each configured backend and report on it."""
    toolbox = Toolbox(settings.toolbox_config())
    roles: list[RoleReport] = []
    for role in ROLES:
        config = getattr(settings.tools, role)
        try:
            specialist = toolbox.specialist(role)
            info = specialist.info()
        except (ToolError, ValueError, ImportError) as error:
            roles.append(
                RoleReport(role=role, backend=config.backend, available=False, problem=str(error))
            )
            continue
        problem = _vlm_problem(specialist, config.backend)
        if problem is None:
            problem = _weights_problem(info.weights or config.model)
        note = info.note
        if role == "vqa" and info.stand_in:
            note = f"{note}; {VLM_HINT}" if note else VLM_HINT
        roles.append(
            RoleReport(
                role=role,
                backend=info.backend,
                model=info.model,
                weights=info.weights,
                device=info.device,
                stand_in=info.stand_in,
                available=not problem,
                problem=problem,
                note=note,
            )
        )
    with SandboxExecutor(settings.sandbox, pool_size=0) as executor:
        isolation = executor.probe_isolation()
    return DoctorReport(
        version=vpagent.__version__,
        profile=settings.profile,
        roles=roles,
        sandbox_isolation=isolation,
    )
