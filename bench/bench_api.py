"""Cloud API measurements: Lambda package size, cold start and warm /v1/route latency through the Mangum handler.

    python bench/bench_api.py [--router DIR] [--build-dir .aws-sam/build] [--cold-runs 5] [--warm-calls 500]

- size: unzipped RouterLayer + each function from a `sam build` output (Lambda's limit is 250 MB, layers included).
- cold start: a fresh Python process per run: import functions/api/app.py (FastAPI, Mangum, Powertools,
  hybrid_router), then the first POST /v1/route event through the handler (which loads the router). Median of runs.
- warm: the same handler, N more route events; p50 / p99, beside the router's own decide() latency.
Without --router: the packaged default router.
The Lambda sandbox is not this machine: treat cold/warm numbers as relative, not as AWS figures.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EVENT = REPO / "tests" / "events" / "route_post.json"
LIMIT_MB = 250.0


class Context:
    function_name = "bench-api"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench-api"
    log_group_name = "/aws/lambda/bench-api"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def dir_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


def sizes(build_dir: Path) -> dict[str, Any]:
    if not (build_dir / "RouterLayer").is_dir():
        return {"error": f"no sam build output in {build_dir} (run: sam build --build-dir {build_dir})"}
    layer = dir_mb(build_dir / "RouterLayer")
    result: dict[str, Any] = {"router_layer_mb": round(layer, 1), "limit_mb": LIMIT_MB}
    for function in ("ApiFunction", "IngestFunction"):
        if (build_dir / function).is_dir():
            own = dir_mb(build_dir / function)
            result[function] = {"function_mb": round(own, 2), "with_layer_mb": round(own + layer, 1)}
    artifacts = build_dir / "RouterLayer" / "python" / "hybrid_router" / "artifacts"
    result["router_artifacts_mb"] = round(dir_mb(artifacts), 1) if artifacts.is_dir() else 0.0
    return result


def bench_env(router: str) -> dict[str, str]:
    return {
        **os.environ,
        "HYBRID_ROUTER_ROUTER": router,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "bench-api",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "AWS_REGION": "us-east-1",
        "OMP_NUM_THREADS": "1",
        "HYBRID_ROUTER_THREADS": "1",
    }


def child(out_path: str) -> None:
    """One cold start, in this (fresh) process."""
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("api_app", REPO / "functions" / "api" / "app.py")
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        spec.loader.exec_module(module)
        imported = time.perf_counter()
        response = module.handler(json.loads(EVENT.read_text()), Context())
        first = time.perf_counter()
    assert response["statusCode"] == 200, response
    Path(out_path).write_text(
        json.dumps(
            {
                "import_ms": (imported - started) * 1000,
                "first_route_ms": (first - imported) * 1000,
                "in_process_ms": (first - started) * 1000,
            }
        )
    )


def cold_starts(router: str, runs: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            began = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--child", out.name], env=bench_env(router), check=True)
            wall = (time.perf_counter() - began) * 1000
            sample = json.loads(Path(out.name).read_text())
        sample["process_wall_ms"] = wall
        samples.append(sample)
    keys = samples[0].keys()
    return {"runs": runs, **{f"median_{k}": round(statistics.median(s[k] for s in samples), 1) for k in keys}}


def warm(router: str, calls: int, warmup: int = 20) -> dict[str, Any]:
    os.environ.update(bench_env(router))
    spec = importlib.util.spec_from_file_location("api_app_warm", REPO / "functions" / "api" / "app.py")
    module = importlib.util.module_from_spec(spec)
    event = json.loads(EVENT.read_text())
    handler_ms, router_ms = [], []
    with contextlib.redirect_stdout(open(os.devnull, "w")):
        spec.loader.exec_module(module)
        for i in range(warmup + calls):
            began = time.perf_counter()
            response = module.handler(event, Context())
            elapsed = (time.perf_counter() - began) * 1000
            assert response["statusCode"] == 200
            if i >= warmup:
                handler_ms.append(elapsed)
                router_ms.append(json.loads(response["body"])["latency_ms"])
    return {
        "calls": calls,
        "p50_ms": round(percentile(handler_ms, 50), 2),
        "p99_ms": round(percentile(handler_ms, 99), 2),
        "router_decide_p50_ms": round(percentile(router_ms, 50), 2),
        "router_decide_p99_ms": round(percentile(router_ms, 99), 2),
    }


def default_router() -> tuple[str, str]:
    return str(REPO / "layers" / "router" / "hybrid_router" / "artifacts" / "default"), "packaged default"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--router", help="router folder or .onnx (default: the packaged default)")
    parser.add_argument("--build-dir", default=str(REPO / ".aws-sam" / "build"))
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--warm-calls", type=int, default=500)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    router, router_note = (args.router, "given") if args.router else default_router()
    result = {
        "router": router,
        "router_note": router_note,
        "size": sizes(Path(args.build_dir)),
        "cold_start": cold_starts(router, max(args.cold_runs, 1)),
        "warm_route": warm(router, args.warm_calls),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    size, cold, hot = result["size"], result["cold_start"], result["warm_route"]
    print(f"router: {router} ({router_note})")
    print(f"size:   {json.dumps(size)}")
    print(
        f"cold start (median of {cold['runs']} fresh processes): import {cold['median_import_ms']} ms, "
        f"first /v1/route {cold['median_first_route_ms']} ms, in-process total {cold['median_in_process_ms']} ms, "
        f"process wall {cold['median_process_wall_ms']} ms"
    )
    print(
        f"warm /v1/route through Mangum ({hot['calls']} calls): p50 {hot['p50_ms']} ms, p99 {hot['p99_ms']} ms "
        f"(router decide p50 {hot['router_decide_p50_ms']} ms, p99 {hot['router_decide_p99_ms']} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
