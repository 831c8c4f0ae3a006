"""Request-path overhead of this checkout against another git revision, alternated in one run.

    OMP_NUM_THREADS=1 .venv/bin/python bench/compare_revisions.py --base REV [--rounds 4] [--requests 300]
        [--route-calls 500] [--json]

Two measures, each taken in a fresh process per tree (PYTHONPATH pointing at that tree), the trees alternating
which goes first in each round:

    edge     the device server (`edge_client.server.create_app` under uvicorn, a real socket, the packaged router,
             the SQLite decision log with its fsync) answering POST /v1/chat/completions from a local model that
             answers instantly: what remains is the server's own overhead per request (HTTP, checks, routing,
             the record). p50 over `--requests` sequential requests.
    route    the cloud API's warm POST /v1/route through Mangum (`bench/bench_api.py`'s warm measure in that tree):
             p50 over `--route-calls` calls.

The base revision is checked out with `git worktree add --detach` into a temporary folder and removed after. Only
APIs present in both trees are used (build_service with a given weak backend, create_app, Settings).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]


class InstantBackend:
    """A local model that answers at once, so the measure is the server's own work."""

    name = "instant"

    def __init__(self) -> None:
        from hybrid_router.backends.base import Completion

        self._completion = Completion

    def load(self) -> None:
        pass

    def complete(self, messages: list[dict], max_tokens: int = 256, **_: Any) -> Any:
        return self._completion(text="ok", model=self.name, prompt_tokens=8, completion_tokens=1)

    def stream(self, messages: list[dict], max_tokens: int = 256, **_: Any):
        yield "ok"
        return None


def measure_edge(requests: int) -> float:
    import httpx
    import uvicorn

    from edge_client.config import Settings
    from edge_client.factory import build_service
    from edge_client.server import create_app

    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(data_dir=scratch, threshold=1.0, max_tokens=1)
        service = build_service(settings, weak=InstantBackend(), strong=None)
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(create_app(service), log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1/chat/completions"
        body = {
            "model": "instant",
            "max_tokens": 1,
            "messages": [{"role": "user", "content": "Write a Python function that merges two sorted lists."}],
        }
        samples = []
        with httpx.Client(timeout=30) as http:
            for i in range(requests + 20):
                began = time.perf_counter()
                response = http.post(url, json={**body, "model": "router"})
                elapsed = (time.perf_counter() - began) * 1000.0
                assert response.status_code == 200, response.text
                if i >= 20:
                    samples.append(elapsed)
        server.should_exit = True
        thread.join(timeout=10)
        return statistics.median(samples)


def measure_route(calls: int) -> float:
    spec = importlib.util.spec_from_file_location("tree_bench_api", Path.cwd() / "bench" / "bench_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    router = str(Path.cwd() / "layers" / "router" / "hybrid_router" / "artifacts" / "default")
    return float(module.warm(router, calls)["p50_ms"])


def child(args: argparse.Namespace) -> None:
    result = {"edge_p50_ms": measure_edge(args.requests), "route_p50_ms": measure_route(args.route_calls)}
    print(json.dumps(result))


def run_in(tree: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'layers' / 'router'}{os.pathsep}{tree}", "OMP_NUM_THREADS": "1"}
    env = {k: v for k, v in env.items() if not (k.startswith("HYBRID_ROUTER_") and k != "HYBRID_ROUTER_THREADS")}
    out = subprocess.run(
        [
            sys.executable,
            str(HERE),
            "--child",
            "--requests",
            str(args.requests),
            "--route-calls",
            str(args.route_calls),
        ],
        cwd=tree,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--route-calls", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return 0
    if not args.base:
        parser.error("--base REV is required")
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        base_tree = Path(scratch) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base_tree), args.base], cwd=REPO, check=True)
        try:
            rounds = []
            for i in range(args.rounds):
                order = [("base", base_tree), ("head", REPO)]
                if i % 2:
                    order.reverse()
                rounds.append({name: run_in(tree, args) for name, tree in order})
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=REPO, check=False)
    summary: dict[str, Any] = {"base": args.base, "head": head, "rounds": rounds}
    for key in ("edge_p50_ms", "route_p50_ms"):
        base = statistics.median(r["base"][key] for r in rounds)
        new = statistics.median(r["head"][key] for r in rounds)
        summary[key] = {"base": round(base, 2), "head": round(new, 2), "head_over_base": round(new / base, 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"| measure | {args.base} (base) | {head} (head) | head ÷ base |")
    print("| --- | ---: | ---: | ---: |")
    for key, label in (
        ("edge_p50_ms", "device server overhead per request, p50"),
        ("route_p50_ms", "cloud warm /v1/route through Mangum, p50"),
    ):
        s = summary[key]
        print(f"| {label} (median of {args.rounds} rounds) | {s['base']} ms | {s['head']} ms | {s['head_over_base']} |")
    for i, r in enumerate(rounds, 1):
        print(
            f"- round {i}: base edge {r['base']['edge_p50_ms']:.2f} / route {r['base']['route_p50_ms']:.2f} ms, "
            f"head edge {r['head']['edge_p50_ms']:.2f} / route {r['head']['route_p50_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
