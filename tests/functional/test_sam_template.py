"""The SAM template checked by AWS's own tools, offline: cfn-lint, `sam validate --lint`, and `sam build`.

aws-sam-cli is large, so it lives in its own venv (the Makefile installs it):
    python3.12 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli cfn-lint
The tests find `sam` / `cfn-lint` on PATH, in $HYBRID_ROUTER_SAM_VENV/bin, or in .venv-sam/bin, and skip (saying
so) only when the tool is absent. `sam build` (arm64, python3.12) needs a python3.12 interpreter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
SAM_VENV = Path(os.environ.get("HYBRID_ROUTER_SAM_VENV") or REPO / ".venv-sam")


def find_tool(name: str) -> str:
    for candidate in (shutil.which(name), SAM_VENV / "bin" / name, Path(sys.executable).parent / name):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    pytest.skip(
        f"{name} is not installed (python3.12 -m venv .venv-sam && .venv-sam/bin/pip install "
        f"aws-sam-cli cfn-lint); CI must install it"
    )


def tool_env() -> dict[str, str]:
    return {**os.environ, "SAM_CLI_TELEMETRY": "0", "AWS_DEFAULT_REGION": "us-east-1"}


def run(args: list[str], env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO, env=env or tool_env(), capture_output=True, text=True, timeout=timeout)


def test_cfn_lint_passes() -> None:
    result = run([find_tool("cfn-lint"), "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_passes() -> None:
    result = run([find_tool("sam"), "validate", "--lint", "--region", "us-east-1", "--template-file", "template.yaml"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def python312_env() -> dict[str, str]:
    """An environment where `python3.12` runs (sam build's python3.12 workflow calls it)."""
    env = tool_env()
    if subprocess.run(["python3.12", "--version"], env=env, capture_output=True).returncode == 0:
        return env
    pyenv_root = Path(env.get("PYENV_ROOT") or Path.home() / ".pyenv")
    for version_dir in sorted(pyenv_root.glob("versions/3.12*"), reverse=True):
        if (version_dir / "bin" / "python3.12").is_file():
            env["PATH"] = f"{version_dir / 'bin'}{os.pathsep}{env['PATH']}"
            env.pop("PYENV_VERSION", None)
            return env
    pytest.skip("no python3.12 interpreter for `sam build` (runtime python3.12)")


def dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


@pytest.mark.slow
def test_sam_build_succeeds_and_fits_lambda(tmp_path) -> None:
    sam = find_tool("sam")
    cache = Path(os.environ.get("HYBRID_ROUTER_SAM_CACHE") or Path.home() / ".cache" / "hybrid-router" / "sam-cache")
    build = tmp_path / "build"
    result = run(
        [
            sam,
            "build",
            "--template-file",
            "template.yaml",
            "--build-dir",
            str(build),
            "--cache-dir",
            str(cache),
            "--cached",
        ],
        env=python312_env(),
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    layer = build / "RouterLayer" / "python"
    assert (layer / "hybrid_router" / "api" / "app.py").is_file()
    for package in (
        "onnxruntime",
        "tokenizers",
        "numpy",
        "pydantic",
        "fastapi",
        "mangum",
        "aws_lambda_powertools",
        "uvicorn",  # the chat function's server behind the Lambda Web Adapter
    ):
        assert (layer / package).is_dir(), f"{package} missing from the layer"
    for package in ("boto3", "botocore", "huggingface_hub", "hf_xet"):  # the runtime's boto3; no hub downloads
        assert not (layer / package).exists(), f"{package} is in the layer"
    native = next(layer.glob("onnxruntime/capi/onnxruntime_pybind11_state*.so"))
    assert "aarch64" in native.name, "the layer must carry arm64 wheels"
    start = build / "ChatFunction" / "run.sh"
    assert start.is_file() and start.stat().st_mode & 0o111, "the chat function's start script must stay executable"
    for function in ("ApiFunction", "IngestFunction", "ChatFunction"):
        assert (build / function / "app.py").is_file()
        total = dir_size(build / "RouterLayer") + dir_size(build / function)
        assert total < LAMBDA_UNZIPPED_LIMIT, f"{function} + layer is {total / 2**20:.0f} MB unzipped"
