"""The distribution owns one import name, and its layers import downward only."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel of this checkout, built from a copy (setuptools writes build/ beside it)."""
    source = tmp_path_factory.mktemp("source") / "vpagent"
    skip = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", "traces")
    shutil.copytree(REPO, source, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run([*build, "-w", str(out), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.glob("vpagent-*.whl"))


def _other_distribution_with_a_tools_package(folder: Path) -> Path:
    """A project of someone else's that ships a top-level ``tools`` package."""
    (folder / "tools").mkdir(parents=True)
    (folder / "tools" / "__init__.py").write_text('OWNER = "someone else"\n')
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-tools"\nversion = "1.0"\n'
        '[tool.setuptools]\npackages = ["tools"]\n'
    )
    return folder


@pytest.mark.slow  # builds and installs two wheels: ~20 s
def test_the_wheel_installs_only_vpagent_beside_another_tools_package(
    wheel: Path, tmp_path: Path
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"vpagent", "vpagent-0.1.0.dist-info"}
    for folder in ("tools", "distill", "apps", "cli", "student"):
        assert any(name.startswith(f"vpagent/{folder}/") for name in names), folder

    target = tmp_path / "site"
    other = _other_distribution_with_a_tools_package(tmp_path / "other")
    for source in (str(wheel), str(other)):
        install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps"]
        done = subprocess.run(
            [*install, "--no-build-isolation", "--target", str(target), source],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    # -S: no site-packages .pth files, so this checkout's editable install cannot answer;
    # the dependencies come from this interpreter's site-packages, vpagent only from the wheel.
    check = (
        "import tools, vpagent, vpagent.tools.registry, vpagent.distill.traces, vpagent.cli;"
        "print(tools.OWNER);"
        "print(vpagent.tools.registry.__file__);"
        "print(vpagent.cli.app.info.name)"
    )
    path = f"{target}:{sysconfig.get_paths()['purelib']}"
    done = subprocess.run(
        [sys.executable, "-S", "-c", check],
        env={"PYTHONPATH": path, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    owner, registry, cli = done.stdout.splitlines()[-3:]
    assert owner == "someone else"
    assert Path(registry).is_relative_to(target / "vpagent" / "tools")
    assert cli == "vpagent"


def test_layers_import_downward_only_and_no_file_imports_another_in_a_circle() -> None:
    """`scripts/check-imports.sh` (also run by `make lint`): the import-linter layers contract in
    pyproject.toml and scripts/import_circles.py, on a copy laid out as installed."""
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "check-imports.sh")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "1 kept, 0 broken" in done.stdout
    assert "0 import circles between the files of vpagent" in done.stdout


def test_the_circle_check_finds_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    package = tmp_path / "loop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from loop import b\n")
    (package / "b.py").write_text("def later():\n    from loop import a\n")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "import_circles.py"), "loop"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert "import circle: loop.a -> loop.b -> loop.a" in done.stdout
