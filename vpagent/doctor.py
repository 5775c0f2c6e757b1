"""`vpagent doctor`: what serves each role, and whether it can run here."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

import vpagent
from tools.errors import ToolError
from tools.server import ToolServer
from vpagent.config import ROLES, Settings
from vpagent.sandbox.executor import SandboxExecutor


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


def diagnose(settings: Settings) -> DoctorReport:
    """Build (without loading models) each configured backend and report on it."""
    server = ToolServer(settings)
    roles: list[RoleReport] = []
    for role in ROLES:
        config = getattr(settings.tools, role)
        try:
            info = server.specialist(role).info()
        except (ToolError, ValueError, ImportError) as error:
            roles.append(
                RoleReport(role=role, backend=config.backend, available=False, problem=str(error))
            )
            continue
        problem = _weights_problem(info.weights or config.model)
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
                note=info.note,
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
