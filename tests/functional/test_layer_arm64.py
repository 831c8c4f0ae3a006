"""The router layer's arm64 wheels import and score where Lambda runs them: on arm64, without the sysfs CPU lists.

Lambda's arm64 sandbox has no /sys/devices/system/cpu/possible or present; onnxruntime before 1.26.0 aborts at import
there ("Error in cpuinfo: failed to parse the list of possible processors", then "Attempt to use DefaultLogger but
none has been registered": microsoft/onnxruntime#10038, fixed by #28230), and the api function loads the router at
start, so every route would fail. This test builds the layer with its own Makefile and pinned requirements for
aarch64, and runs it on this x86 machine under user-mode emulation (Debian's qemu-user-static, an arm64 Debian root
from scripts/arm64_rootfs.sh) in a private mount namespace where those two files do not exist
(scripts/lambda_arm64_run.sh), with an ARM /proc/cpuinfo (tests/fixtures/lambda_arm64_cpuinfo.txt, a Graviton2
Neoverse-N1 as Lambda shows it in microsoft/onnxruntime#10038; qemu-user would show the host's x86 one). There the
packaged router scores as it does here, the api function (laid out as Lambda does: /var/task, /opt/python,
/var/runtime) starts and answers /health and /v1/route with real API Gateway events, and the last onnxruntime
before the fix aborts exactly as on Lambda.

What differs from Lambda: the emulated Python is Debian bookworm's 3.11, not Lambda's 3.12 (neither Debian nor PyPI
has an arm64 CPython 3.12), so the layer is built with the same pins for cp311; tokenizers' wheel is abi3, the same
file for both; onnxruntime and numpy are the same versions built for the other CPython.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPUINFO = REPO / "tests/fixtures/lambda_arm64_cpuinfo.txt"
PROMPTS = ["hi", "What is 7 + 5?", "Prove that there are infinitely many primes, then generalise to primes 4k+3."]
LAST_BROKEN_ONNXRUNTIME = "1.25.1"  # the last release without microsoft/onnxruntime#28230

PROBE = f"""
import json, os, platform
hidden = [p for p in ("possible", "present") if not os.path.exists("/sys/devices/system/cpu/" + p)]
import onnxruntime
from hybrid_router.routing.router import load_router
router = load_router()
scores = [float(s) for s in router.score({PROMPTS!r})]
print(json.dumps({{"machine": platform.machine(), "python": platform.python_version(), "hidden": hidden,
                  "onnxruntime": onnxruntime.__version__, "scores": scores}}))
"""


def _pin(name: str) -> str:
    text = (REPO / "layers/router/requirements.txt").read_text() + (
        REPO / "layers/router/requirements-nodeps.txt"
    ).read_text()
    found = re.search(rf"^{name}==(\S+)", text, re.M)
    assert found, f"{name} must be pinned in the layer's requirements"
    return found.group(1)


@pytest.fixture(scope="module")
def arm64_root() -> Path:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (a private mount namespace hides the sysfs CPU lists)")
    made = subprocess.run(
        [str(REPO / "scripts/arm64_rootfs.sh")], capture_output=True, text=True, timeout=1800, check=False
    )
    root = made.stdout.strip()
    if made.returncode != 0 or not root or not Path(root, ".hybrid-router-ready").exists():
        pytest.skip(f"no arm64 emulation here: {made.stderr.strip() or 'scripts/arm64_rootfs.sh made none'}")
    return Path(root)


def _emulated_python_version(root: Path) -> str:
    out = subprocess.run(
        ["chroot", str(root), "/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def layer(arm64_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The layer as `sam build` makes it (layers/router/Makefile, ARCH aarch64), for the emulated Python."""
    out = tmp_path_factory.mktemp("layer-arm64")
    subprocess.run(
        [
            "make",
            "-s",
            "-f",
            "layers/router/Makefile",
            "build-RouterLayer",
            f"ARTIFACTS_DIR={out}",
            f"PYTHON={sys.executable}",
            f"PY_VERSION={_emulated_python_version(arm64_root)}",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    )
    return out / "python"


def _run(
    root: Path, layer_dir: Path, *python_args: str, env: dict[str, str] | None = None, **dirs: Path
) -> subprocess.CompletedProcess:
    """python3 on arm64 as Lambda lays a function out (scripts/lambda_arm64_run.sh); dirs: task=, runtime=."""
    mounts = {f"LAMBDA_{name.upper()}_DIR": str(path) for name, path in dirs.items()}
    pairs = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        [
            str(REPO / "scripts/lambda_arm64_run.sh"),
            str(root),
            str(layer_dir),
            str(CPUINFO),
            *pairs,
            "--",
            *python_args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **mounts},
    )


def test_the_packaged_router_scores_on_arm64_without_the_sysfs_cpu_lists(arm64_root: Path, layer: Path) -> None:
    from hybrid_router.routing.router import load_router

    ran = _run(arm64_root, layer, "-c", PROBE)
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["machine"] == "aarch64" and result["hidden"] == ["possible", "present"]
    assert result["onnxruntime"] == _pin("onnxruntime")
    # The same router file scores the same on arm64 as here.
    here = [float(s) for s in load_router().score(PROMPTS)]
    assert result["scores"] == pytest.approx(here, abs=1e-4)
    assert all(0.0 <= s <= 1.0 for s in result["scores"])


def test_the_same_run_aborts_with_the_last_onnxruntime_before_the_fix(
    arm64_root: Path, layer: Path, tmp_path: Path
) -> None:
    """The harness reproduces Lambda's failure: without it, the test above would prove nothing."""
    broken = tmp_path / "python"
    shutil.copytree(layer, broken, copy_function=os.link, ignore=shutil.ignore_patterns("onnxruntime", "onnxruntime-*"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            _emulated_python_version(arm64_root),
            "--platform",
            "manylinux_2_28_aarch64",
            "--platform",
            "manylinux2014_aarch64",
            "--platform",
            "manylinux_2_17_aarch64",
            "--target",
            str(broken),
            f"onnxruntime=={LAST_BROKEN_ONNXRUNTIME}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    ran = _run(arm64_root, broken, "-c", PROBE)
    assert ran.returncode != 0
    assert "failed to parse" in ran.stderr and "Attempt to use DefaultLogger" in ran.stderr, ran.stderr[-3000:]


HANDLER_PROBE = """
import json, time
started = time.monotonic()
import app  # functions/api/app.py: loads the router at init, as Lambda does
init_s = time.monotonic() - started

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "api", 1024, "arm64-probe"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:api"

    @staticmethod
    def get_remaining_time_in_millis():
        return 30000

answers = {}
for name in ("health_get.json", "route_post.json"):
    response = app.handler(json.load(open(name)), Context())
    answers[name] = {"status": response["statusCode"], "body": json.loads(response["body"])}
print(json.dumps({"init_s": init_s, "answers": answers}))
"""


def test_the_api_function_starts_and_answers_on_arm64(arm64_root: Path, layer: Path, tmp_path: Path) -> None:
    """The api function as Lambda runs it: its code in /var/task, the layer in /opt/python, the runtime's boto3 in
    /var/runtime; its init loads the packaged router, then /health and /v1/route answer with real events."""
    task, runtime = tmp_path / "task", tmp_path / "runtime"
    task.mkdir()
    shutil.copy(REPO / "functions/api/app.py", task)
    for name in ("health_get.json", "route_post.json"):
        shutil.copy(REPO / "tests/events" / name, task)
    subprocess.run(  # boto3 is the Lambda runtime's, not the layer's (layers/router/requirements.txt)
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            _emulated_python_version(arm64_root),
            "--platform",
            "manylinux2014_aarch64",
            "--target",
            str(runtime),
            "boto3",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    env = {
        "AWS_REGION": "us-east-1",
        "TENANT_ID": "acme",
        "DECISIONS_TABLE_NAME": "decisions",
        "POWERTOOLS_SERVICE_NAME": "hybrid-router-api",
        "POWERTOOLS_METRICS_NAMESPACE": "HybridRouter",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "HYBRID_ROUTER_THREADS": "1",
    }
    ran = _run(arm64_root, layer, "-c", HANDLER_PROBE, env=env, task=task, runtime=runtime)
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    health, route = result["answers"]["health_get.json"], result["answers"]["route_post.json"]
    assert health == {
        "status": 200,
        "body": {"status": "ok", "version": health["body"]["version"], "routes": ["inference"]},
    }
    assert route["status"] == 200 and 0.0 <= route["body"]["score"] <= 1.0
    assert route["body"]["router_id"] == "default-clf-task-cheap-easy"  # the router packaged in the layer
