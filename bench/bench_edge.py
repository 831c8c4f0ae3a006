"""What the edge server costs on top of the local model, measured in one run on one llama.cpp model.

1. Overhead per request: the same chat requests (max_tokens small) answered (a) by llama-cpp-python directly
   and (b) through the edge server (HTTP + parsing + router scoring + decision log write + JSON), interleaved.
   Reports p50/p99 of both, of the difference, and the ratio server/direct.
2. Throughput: streamed tokens/s through the server (SSE via httpx) vs raw llama-cpp-python streaming, same prompts,
   same max_tokens, interleaved. Goal: server >= 97% of raw.

    OMP_NUM_THREADS=1 python bench/bench_edge.py [--router DIR] [--requests 40] [--stream-requests 8]
        [--stream-tokens 128] [--threads 1] [--json]

Without --router the packaged default router is used.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from edge_client.config import Settings
from edge_client.routing_source import LocalRouteSource
from edge_client.server import create_app
from edge_client.service import EdgeService
from hybrid_router.backends.llama_cpp import LlamaCppBackend
from hybrid_router.stores.sqlite_log import DecisionLog

PROMPTS = [
    "What is the capital of France?",
    "Give me a synonym for happy.",
    "How many legs does a spider have?",
    "Write a haiku about rain.",
    "What is 12 times 7?",
    "Name a primary colour.",
    "Translate 'thank you' into Spanish.",
    "What does a thermometer measure?",
]
LONG_PROMPTS = [
    "Write a long story about a robot who learns to paint.",
    "Explain in detail how photosynthesis works.",
    "Describe the history of the printing press at length.",
    "Write a detailed guide to planting a vegetable garden.",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def router_dir(given: str | None) -> str | None:
    """The router folder to serve: the one given, else None (the packaged default, shipped in the repository)."""
    return given or None


class Server:
    def __init__(self, app) -> None:
        self.sock = socket.socket()
        # as `hybrid-router serve` (uvicorn binding its own socket): no ~40 ms delayed-ACK wait per response
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def direct_call(backend: LlamaCppBackend, prompt: str, max_tokens: int) -> tuple[float, int]:
    llama = backend._llama
    with backend._lock:
        started = time.perf_counter()
        result = llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0
        )
        return time.perf_counter() - started, result["usage"]["completion_tokens"]


def server_call(http: httpx.Client, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    response = http.post(
        "/v1/chat/completions",
        json={
            "model": model,
            "max_tokens": max_tokens,
            "temperature": 0,
            "messages": [{"role": "user", "content": prompt}],
        },
    )
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()["usage"]["completion_tokens"]


def direct_stream(backend: LlamaCppBackend, prompt: str, max_tokens: int) -> tuple[float, int]:
    llama = backend._llama
    with backend._lock:
        started = time.perf_counter()
        tokens = 0
        for chunk in llama.create_chat_completion(
            messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0, stream=True
        ):
            if chunk["choices"][0]["delta"].get("content"):
                tokens += 1
        return time.perf_counter() - started, tokens


def server_stream(http: httpx.Client, model: str, prompt: str, max_tokens: int) -> tuple[float, int]:
    started = time.perf_counter()
    tokens = 0
    body = {
        "model": model,
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            for choice in event.get("choices") or []:
                if choice["delta"].get("content"):
                    tokens += 1
    return time.perf_counter() - started, tokens


def interleaved(i: int, backend: LlamaCppBackend, direct, server) -> tuple[float, int, float, int]:
    """Both paths on the same prompt, alternating which goes first; the KV cache is cleared before each,
    so neither reuses the other's evaluated prompt."""
    results = {}
    for name in ("direct", "server") if i % 2 == 0 else ("server", "direct"):
        backend._llama.reset()
        results[name] = direct() if name == "direct" else server()
    return (*results["direct"], *results["server"])


def paired_runs(
    backend: LlamaCppBackend,
    prompts: list[str],
    count: int,
    direct: Callable[[str], tuple[float, int]],
    server: Callable[[str], tuple[float, int]],
) -> Iterator[tuple[float, int, float, int]]:
    """`count` interleaved runs of both paths, cycling through `prompts`: (seconds, tokens) direct, then server."""
    for i in range(count):
        prompt = prompts[i % len(prompts)]
        yield interleaved(i, backend, partial(direct, prompt), partial(server, prompt))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--router", default=None, help="router folder or file")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--stream-requests", type=int, default=8)
    parser.add_argument("--stream-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    return parser


def edge_service(scratch: Path, router: str | None, backend: LlamaCppBackend, source: LocalRouteSource) -> EdgeService:
    """The edge server's service on `backend` alone, logging to `scratch`, routing with `source` (the folder
    `router`). Threshold 1.0 keeps every request on the local model while still scoring it with the router."""
    settings = Settings(data_dir=str(scratch), router_path=router, threshold=1.0)
    return EdgeService(
        settings,
        weak=backend,
        strong=None,
        route_source=source,
        decision_log=DecisionLog(settings.decision_log_path),
    )


def measure_overhead(
    backend: LlamaCppBackend, http: httpx.Client, model: str, requests: int, max_tokens: int
) -> dict[str, list[float]]:
    """Milliseconds per request, direct and through the server, and their difference (after a warm-up of both)."""
    for prompt in PROMPTS[:2]:
        direct_call(backend, prompt, max_tokens)
        server_call(http, model, prompt, max_tokens)
    times: dict[str, list[float]] = {"direct": [], "server": [], "overhead": []}
    runs = paired_runs(
        backend,
        PROMPTS,
        requests,
        lambda prompt: direct_call(backend, prompt, max_tokens),
        lambda prompt: server_call(http, model, prompt, max_tokens),
    )
    for d, d_tokens, s, s_tokens in runs:
        assert d_tokens == s_tokens, "the two paths generated different answers"
        times["direct"].append(d * 1000)
        times["server"].append(s * 1000)
        times["overhead"].append((s - d) * 1000)
    return times


def measure_throughput(
    backend: LlamaCppBackend, http: httpx.Client, model: str, requests: int, max_tokens: int
) -> dict[str, list[float]]:
    """Streamed tokens per second of each request, raw and through the server."""
    rates: dict[str, list[float]] = {"raw": [], "server": []}
    runs = paired_runs(
        backend,
        LONG_PROMPTS,
        requests,
        lambda prompt: direct_stream(backend, prompt, max_tokens),
        lambda prompt: server_stream(http, model, prompt, max_tokens),
    )
    for d, d_tokens, s, s_tokens in runs:
        rates["raw"].append(d_tokens / d)
        rates["server"].append(s_tokens / s)
    return rates


def _p50_p99(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99)}


def print_result(result: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"model {result['model']} ({args.threads} thread(s)), router {result['router']}, "
        f"{args.requests} requests x {args.max_tokens} tokens"
    )
    for key in ("direct_ms", "server_ms", "overhead_ms", "router_latency_ms"):
        print(f"  {key:18s} p50 {result[key]['p50']:8.2f}  p99 {result[key]['p99']:8.2f}")
    ratio = result["ratio_server_over_direct"]
    print(f"  server/direct      p50 {ratio['p50']:8.3f}  p99 {ratio['p99']:8.3f}")
    print(
        f"streaming {args.stream_requests} x {args.stream_tokens} tokens: raw {result['raw_tokens_per_s']:.1f} "
        f"tok/s, server {result['server_tokens_per_s']:.1f} tok/s, "
        f"ratio {result['throughput_ratio']:.3f} (goal >= 0.97)"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch_name:
        router = router_dir(args.router)
        backend = LlamaCppBackend(args.model_path, n_ctx=2048, n_threads=args.threads)
        backend.load()
        source = LocalRouteSource(router)
        service = edge_service(Path(scratch_name), router, backend, source)
        model = "router"
        with Server(create_app(service)) as server, httpx.Client(base_url=server.url, timeout=300) as http:
            times = measure_overhead(backend, http, model, args.requests, args.max_tokens)
            rates = measure_throughput(backend, http, model, args.stream_requests, args.stream_tokens)
        decisions = service.log.count()
        router_ms = [r.router_latency_ms for r in service.log.records()]

    direct, routed = times["direct"], times["server"]
    raw_tps, server_tps = statistics.median(rates["raw"]), statistics.median(rates["server"])
    result = {
        "model": backend.name,
        "threads": args.threads,
        "router": source.kind,
        "requests": args.requests,
        "max_tokens": args.max_tokens,
        "decisions_logged": decisions,
        "direct_ms": _p50_p99(direct),
        "server_ms": _p50_p99(routed),
        "overhead_ms": _p50_p99(times["overhead"]),
        "ratio_server_over_direct": {
            "p50": percentile(routed, 50) / percentile(direct, 50),
            "p99": percentile(routed, 99) / percentile(direct, 99),
        },
        "router_latency_ms": _p50_p99(router_ms),
        "stream_tokens": args.stream_tokens,
        "raw_tokens_per_s": raw_tps,
        "server_tokens_per_s": server_tps,
        "throughput_ratio": server_tps / raw_tps,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_result(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
