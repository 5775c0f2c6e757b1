"""Generated hostile programs: the policy check never crashes, and nothing it accepts reaches a
forbidden name at run time.

Programs come from tests/program_strategy.py (ASTs biased to attribute chains, dunders,
comprehensions, f-strings, decorators, nested functions, huge literals and ``match``) and from
random hostile edits of them. The check must answer each one with a program or a
:class:`ProgramRejected`; anything else is a crash. The accepted ones run, many to a worker, in
the real sandbox child with tests/fixtures/escape_probe.py watching from inside it.

Budgets (tests/property_settings.py): a fixed seed and CHECKS x (1 + MUTANTS) = 10,000 checked
programs and BATCHES sandbox runs in the default run; the ``fuzz`` marker runs ten times as many
with a fresh seed (``pytest -m fuzz``).
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.escape_probe import PROBE_TOOL
from tests.program_strategy import as_program, function_bodies, mutate, programs
from tests.property_settings import fixed, fresh
from vpagent.attempts import FailureReason
from vpagent.sandbox.executor import SandboxExecutor
from vpagent.sandbox.limits_model import SandboxLimits
from vpagent.sandbox.policy import ProgramRejected, check_program

# The strategy's repr (shown only when a test fails) is large; hypothesis warns when it builds it.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")

FIXTURES = Path(__file__).parent / "fixtures"
IMAGE = {"id": "img", "width": 120, "height": 80}
MUTANTS = 9  # hostile edits checked per generated program
CHECKS = 1_000  # generated programs per default run, each with MUTANTS edits: 10,000 checked
BATCHES = 50  # sandbox runs per default run, each with up to BATCH_SIZE accepted programs
BATCH_SIZE = 16
LIMITS = SandboxLimits(
    cpu_seconds=2, wall_seconds=20, memory_mb=256, max_tool_calls=20_000, max_output_chars=1_000
)
OUTCOMES_WITHOUT_ANSWER = {FailureReason.TIMEOUT, FailureReason.MEMORY}


def checked(source: str) -> bool:
    """Whether the check accepts ``source``; any exception but ProgramRejected propagates."""
    try:
        check_program(source)
    except ProgramRejected as rejected:
        assert rejected.message, source
        return False
    return True


def check_with_mutants(source: str, rng: random.Random) -> int:
    """Check ``source`` and MUTANTS hostile edits of it; the number of programs checked."""
    checked(source)
    for _ in range(MUTANTS):
        checked(mutate(source, rng))
    return 1 + MUTANTS


@fixed(CHECKS)
@given(programs, st.randoms(use_true_random=False))
def test_the_check_never_crashes(source: str, rng: random.Random) -> None:
    check_with_mutants(source, rng)


@pytest.mark.fuzz
@fresh(CHECKS)
@given(programs, st.randoms(use_true_random=False))
def test_the_check_never_crashes_fuzz(source: str, rng: random.Random) -> None:
    check_with_mutants(source, rng)


# Running what the check accepts.


class Host:
    """Answers the generated programs' tool calls; keeps what the probe reports."""

    def __init__(self) -> None:
        self.escapes: list[str] = []

    def __call__(self, tool: str, args: dict[str, Any]) -> Any:
        if tool == PROBE_TOOL:
            self.escapes.append(str(args.get("what")))
            return None
        if tool in ("find", "locate"):
            return [{"box": [0, 0, 10, 10], "score": 0.9, "label": str(args.get("name"))}]
        if tool in ("verify_property", "exists"):
            return True
        if tool in ("compute_depth", "segment"):
            return 0.5
        return "blue"


def _runner(count: int) -> str:
    names = ", ".join(f"case_{index}" for index in range(count))
    return (
        "def execute_command(image):\n"
        "    ran = 0\n"
        f"    for case in [{names}]:\n"
        "        try:\n"
        "            case(image)\n"
        "        except Exception:\n"
        "            pass\n"
        "        ran += 1\n"
        "    return ran\n"
    )


def batch_program(bodies: list[list[ast.stmt]]) -> tuple[str, int]:
    """One accepted program that runs each accepted body as its own function, catching what
    each raises: (the source, how many bodies it holds). It answers how many ran to the end."""
    cases: list[str] = []
    for body in bodies:
        if not checked(as_program(body)):
            continue
        case = as_program(body, name=f"case_{len(cases)}")
        if checked("\n".join([*cases, case, _runner(len(cases) + 1)])):  # within the size caps
            cases.append(case)
    return "\n".join([*cases, _runner(len(cases))]), len(cases)


@pytest.fixture(scope="module")
def probed() -> Iterator[SandboxExecutor]:
    api = "escape_probe:build_probed_api"  # tests/fixtures/escape_probe.py
    with SandboxExecutor(LIMITS, pool_size=2, api=api, api_dir=FIXTURES) as sandbox:
        yield sandbox


def run_batch(sandbox: SandboxExecutor, bodies: list[list[ast.stmt]]) -> None:
    """Run the accepted ones of ``bodies`` in one worker: no escape, no crash, all ran."""
    source, count = batch_program(bodies)
    host = Host()
    result = sandbox.run(source, IMAGE, host)
    assert host.escapes == [], (host.escapes, source)
    if result.ok:
        assert result.answer == str(count), (result, source)
    else:  # a generated loop ran out of CPU or memory: contained, and not a crash
        assert result.error_kind in OUTCOMES_WITHOUT_ANSWER, (result, source)


@fixed(BATCHES)
@given(st.lists(function_bodies, min_size=BATCH_SIZE, max_size=BATCH_SIZE))
def test_accepted_programs_reach_nothing_forbidden(
    probed: SandboxExecutor, bodies: list[list[ast.stmt]]
) -> None:
    run_batch(probed, bodies)


@pytest.mark.fuzz
@fresh(BATCHES)
@given(st.lists(function_bodies, min_size=BATCH_SIZE, max_size=BATCH_SIZE))
def test_accepted_programs_reach_nothing_forbidden_fuzz(
    probed: SandboxExecutor, bodies: list[list[ast.stmt]]
) -> None:
    run_batch(probed, bodies)


# The probe itself must see an escape, or its silence above proves nothing.


@pytest.mark.parametrize(
    ("body", "finding"),
    [
        ("leaked = os_module\nreturn 1", "module"),
        ("f = builtins_module.getattr\nreturn 1", "getattr"),
        ("return [builtins_module.eval]", "eval"),
        ("open_file('/etc/hostname')\nreturn 1", "audit event 'open'"),
    ],
)
def test_the_probe_sees_what_an_escaped_program_holds(body: str, finding: str) -> None:
    api = "escape_probe:build_leaky_probed_api"
    with SandboxExecutor(LIMITS, pool_size=1, api=api, api_dir=FIXTURES) as sandbox:
        host = Host()
        source = "def execute_command(image):\n" + "".join(
            f"    {line}\n" for line in body.splitlines()
        )
        sandbox.run(source, IMAGE, host)
    assert any(finding in escape for escape in host.escapes), host.escapes


# Regressions the generated programs found.


@pytest.mark.parametrize(
    "source",
    [
        "def execute_command(image):\n    return 1\nbreak\n",
        "def execute_command(image):\n    def twice(a, a):\n        return a\n    return 1\n",
        "def execute_command(image):\n    return [(a := 1) for a in range(3)]\n",
        "def execute_command(image):\n    continue\n",
    ],
)
def test_programs_that_parse_but_do_not_compile_are_rejected(
    probed: SandboxExecutor, source: str
) -> None:
    """They used to pass the check and kill the worker while it compiled them ('crashed')."""
    with pytest.raises(ProgramRejected, match="syntax error"):
        check_program(source)
    result = probed.run(source, IMAGE, Host())
    assert result.error_kind == FailureReason.REJECTED, result
