"""RouterLayer as Lambda loads it: layers/router/Makefile (the build `sam build` runs for arm64, here for this
machine's architecture) into a temp dir, then each function's handler imported and invoked by python3.12 with
Lambda's sys.path and no site-packages: the function's folder, the layer, then the runtime's own boto3/botocore
(stand-in: this venv's, pure Python). The layer ships neither boto3/botocore nor huggingface_hub.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_api_support import REPO, table  # noqa: F401 (table: a fixture)
from test_sam_template import python312_env

# What the Lambda python3.12 runtime provides (/var/runtime): boto3, botocore and their dependencies.
RUNTIME_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
NOT_IN_LAYER = ("boto3", "botocore", "s3transfer", "huggingface_hub", "hf_xet", "fsspec", "httpx2", "yaml", "tqdm")

# Runs in the python3.12 child: argv = function folder, layer, runtime stand-in, result file, event files.
CHILD = r"""
import importlib, importlib.util, json, sys, uuid
function, layer, runtime, result_file, *events = sys.argv[1:]
sys.path[:] = [function, layer, runtime] + [p for p in sys.path if p and "site-packages" not in p]

class Context:
    function_name = "hybrid-router-layer-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:hybrid-router-layer-test"
    log_group_name = "/aws/lambda/hybrid-router-layer-test"
    log_stream_name = "test"
    aws_request_id = str(uuid.uuid4())
    @staticmethod
    def get_remaining_time_in_millis():
        return 29_000

app = importlib.import_module("app")
responses = [app.handler(json.load(open(event)), Context()) for event in events]
modules = ("app", "hybrid_router", "boto3", "botocore", "aws_xray_sdk", "wrapt", "tokenizers", "onnxruntime",
           "numpy", "pydantic", "fastapi", "mangum", "aws_lambda_powertools")
json.dump({"responses": responses,
           "files": {m: sys.modules[m].__file__ for m in modules if m in sys.modules},
           "importable": [m for m in ("huggingface_hub", "hf_xet") if importlib.util.find_spec(m)],
           "xray_patched": sorted(getattr(sys.modules.get("aws_xray_sdk.core.patcher"), "_PATCHED_MODULES", ()))},
          open(result_file, "w"))
"""


@pytest.fixture(scope="module")
def layer(tmp_path_factory) -> Path:
    arch = platform.machine()
    if sys.platform != "linux" or arch not in ("x86_64", "aarch64"):
        pytest.skip(f"the layer's manylinux wheels do not run on {sys.platform}/{arch}")
    out = tmp_path_factory.mktemp("router-layer")
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            str(REPO / "layers/router/Makefile"),
            "build-RouterLayer",
            f"ARTIFACTS_DIR={out}",
            f"ARCH={arch}",
        ],
        env=python312_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "python"


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> Path:
    """Stands in for /var/runtime: links to this venv's boto3, botocore and their dependencies."""
    folder = tmp_path_factory.mktemp("lambda-runtime")
    for name in RUNTIME_PACKAGES:
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (folder / source.name).symlink_to(source)
    return folder


def run_function(
    function: str, layer: Path, runtime: Path, events: list[str], env: dict[str, str], tmp_path: Path
) -> dict:
    python = shutil.which("python3.12", path=env["PATH"])
    assert python, "python312_env() promised a python3.12"
    out = tmp_path / f"{function}.json"
    function_dir = REPO / "functions" / function
    # Lambda's environment, with Tracer on (LAMBDA_TASK_ROOT + a trace header): X-Ray patches the runtime's botocore.
    env = {
        **env,
        "LAMBDA_TASK_ROOT": str(function_dir),
        "AWS_LAMBDA_FUNCTION_NAME": "hybrid-router-layer-test",
        "_X_AMZN_TRACE_ID": "Root=1-674834a0-3b0c1d2e4f5a6b7c8d9e0f1a;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": f"hybrid-router-{function}",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "AWS_REGION": "us-east-1",
        "OMP_NUM_THREADS": "1",
        "HYBRID_ROUTER_THREADS": "1",
    }
    env.pop("HYBRID_ROUTER_ROUTER", None)  # as in template.yaml: the default router packaged in the layer
    # -S: no site-packages, -E: no PYTHONPATH; cwd outside the repo so nothing else is importable.
    result = subprocess.run(
        [
            python,
            "-S",
            "-E",
            "-c",
            CHILD,
            str(function_dir),
            str(layer),
            str(runtime),
            str(out),
            *(str(REPO / "tests" / "events" / event) for event in events),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(out.read_text())


def test_layer_holds_the_router_package_and_no_dead_weight(layer) -> None:
    source = REPO / "layers" / "router" / "hybrid_router"
    expected = {p.relative_to(source) for p in source.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    shipped = layer / "hybrid_router"
    assert {p.relative_to(shipped) for p in shipped.rglob("*") if p.is_file()} == expected
    assert (layer / "hybrid_router" / "artifacts" / "default" / "router.onnx").is_file()
    assert (layer / "hybrid_router" / "config" / "prices.toml").is_file()
    for package in (
        "onnxruntime",
        "tokenizers",
        "numpy",
        "pydantic",
        "fastapi",
        "mangum",
        "aws_lambda_powertools",
        "aws_xray_sdk",
        "wrapt",
    ):
        assert (layer / package).is_dir(), f"{package} missing from the layer"
    assert [name for name in NOT_IN_LAYER if (layer / name).exists()] == []
    assert [p.name for p in layer.iterdir() if p.name in ("Makefile", "bin") or p.name.startswith("requirements")] == []
    assert list(layer.rglob("__pycache__")) == []


def test_both_handlers_run_on_the_layer_and_the_runtime_boto3(
    layer, runtime, tmp_path, dynamodb_endpoint, table
) -> None:  # noqa: F811
    env = {
        **python312_env(),
        "DECISIONS_TABLE_NAME": table,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "TENANT_ID": "acme",
        "UPLOAD_WINDOW_DAYS": "3660",  # tests/events/decisions_post.json was recorded in 2024
    }
    api = run_function("api", layer, runtime, ["health_get.json", "route_post.json"], env, tmp_path)
    ingest = run_function("ingest", layer, runtime, ["health_get.json", "decisions_post.json"], env, tmp_path)
    for function, result in (("api", api), ("ingest", ingest)):
        health = result["responses"][0]
        assert health["statusCode"] == 200 and json.loads(health["body"])["status"] == "ok"
        files = result["files"]
        assert files["app"] == str(REPO / "functions" / function / "app.py")
        for module in ("hybrid_router", "aws_xray_sdk", "wrapt", "fastapi", "mangum", "aws_lambda_powertools"):
            assert files[module].startswith(str(layer)), (module, files[module])
        assert files["botocore"].startswith(str(runtime)), files["botocore"]
        assert "botocore" in result["xray_patched"]
        assert result["importable"] == []
    route = api["responses"][1]
    assert route["statusCode"] == 200, route["body"]
    assert json.loads(route["body"])["route"] in ("strong", "weak")
    for module in ("tokenizers", "onnxruntime", "numpy"):
        assert api["files"][module].startswith(str(layer)), (module, api["files"][module])
    assert ingest["files"]["boto3"].startswith(str(runtime)), ingest["files"]["boto3"]
    decisions = ingest["responses"][1]
    assert decisions["statusCode"] == 200, decisions["body"]
    assert json.loads(decisions["body"]) == {"accepted": 2, "duplicates": 0, "failed": [], "charged": []}
