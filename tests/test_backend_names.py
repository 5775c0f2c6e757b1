"""Backend names: the tool registry is the one list; every other place that names one is checked
against it, so a renamed or removed backend cannot leave a stale name behind."""

from __future__ import annotations

import pytest

from vpagent.config import PROFILE_TOOLS, ROLES, VLM_PROVIDER_BACKENDS
from vpagent.tools.capabilities import OPEN_VOCABULARY
from vpagent.tools.config import ToolsConfig
from vpagent.tools.registry import BACKENDS, IMPLIED_OPTIONS, VLM_BACKENDS, backend_class
from vpagent.tools.vlm_roles import DEFAULT_BASE_MATCHER

ALL_NAMES = {name for names in BACKENDS.values() for name in names}


def test_roles_are_the_registry_roles_and_the_config_fields() -> None:
    assert tuple(ToolsConfig.model_fields) == ROLES == tuple(BACKENDS)


@pytest.mark.parametrize("profile", sorted(PROFILE_TOOLS))
def test_profile_defaults_name_registered_backends(profile: str) -> None:
    for role, default in PROFILE_TOOLS[profile].items():
        assert default["backend"] in BACKENDS[role], (profile, role)


def test_names_used_elsewhere_are_registered() -> None:
    assert set(BACKENDS["detector"]) >= OPEN_VOCABULARY
    assert DEFAULT_BASE_MATCHER in BACKENDS["matcher"]
    assert VLM_BACKENDS <= ALL_NAMES
    assert set(IMPLIED_OPTIONS) <= ALL_NAMES
    assert set(VLM_PROVIDER_BACKENDS.values()) <= VLM_BACKENDS


@pytest.mark.parametrize(
    ("role", "name"), [(role, name) for role, names in BACKENDS.items() for name in names]
)
def test_each_registered_class_reports_a_name_registered_for_it(role: str, name: str) -> None:
    cls = backend_class(role, name)
    reported = getattr(cls, "backend", None)
    if reported is not None:  # a class serving several names reports one of them
        assert backend_class(role, reported) is cls, (role, name, reported)
