"""Load on both servers over loopback: concurrent clients, latency percentiles, and one record per request.

1. The device server with the real local model (SmolLM2-135M through llama-cpp-python, one thread): `--clients`
   concurrent clients send `--requests` chat requests in all (`max_tokens` 4). Reports p50/p99 of the total
   latency and of the routing overhead (total minus generation minus time queued for the model, from each
   request's own decision record), and checks that every answer's decision id is in the log exactly once.
2. The cloud API (uvicorn, the packaged router, moto's DynamoDB server, the SageMaker stand-in with the same
   model): the same clients on POST /v1/route, POST /v1/chat/completions and POST /v1/decisions (each upload sent
   twice). Every chat answer has exactly one item in the table; every uploaded record is stored once.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_load.py [--clients 50] [--requests 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import httpx

from hybrid_router.api import ApiSettings, create_app as create_api
from hybrid_router.api.identity import parse_key_map
from hybrid_router.backends.llama_cpp import LlamaCppBackend
from hybrid_router.decision import DecisionRecord
from hybrid_router.stores.dynamodb import DynamoDecisionStore, create_table, make_client
from hybrid_router.stores.sqlite_log import DecisionLog
from hybrid_router.ulid import new_ulid
from local_stack.container import create_container_app
from local_stack.model import LlamaTextModel
from local_stack.sagemaker_runtime import create_runtime_app
from local_stack.servers import ServerThread
from local_stack.weights import resolve_model

from edge_client.config import Settings
from edge_client.routing_source import LocalRouteSource
from edge_client.server import create_app as create_edge
from edge_client.service import EdgeService

KEY = "bench-key"
ENDPOINT = "bench-strong"
PROMPTS = ["What is the capital of France?", "Say hello.", "Name a colour.", "What is 2 + 3?"]


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 1), "n": len(ordered)}


def hammer(clients: int, requests: int, send: Callable[[httpx.Client, int], Any]) -> tuple[list[Any], float]:
    """`requests` calls of send(client, i) from `clients` threads, each thread with its own connection, used
    back to back (never idle long enough for the server's keep-alive timeout to close it under a request)."""
    local = threading.local()
    opened: list[httpx.Client] = []

    def one(i: int) -> Any:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=600)
            opened.append(local.client)
        return send(local.client, i)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - started
    for client in opened:
        client.close()
    return results, elapsed


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    response = call()
    return response, (time.perf_counter() - started) * 1000


def overhead_ms(total_ms: float, record: DecisionRecord) -> float:
    return total_ms - record.generation_latency_ms - record.queue_latency_ms


def device(clients: int, requests: int, work: Path) -> dict[str, Any]:
    weak = LlamaCppBackend(n_ctx=1024, n_threads=1)
    weak.load()
    settings = Settings(data_dir=str(work / "device"), max_tokens=4)
    log = DecisionLog(settings.decision_log_path)
    service = EdgeService(settings, weak=weak, strong=None, route_source=LocalRouteSource(None), decision_log=log)
    with ServerThread(create_edge(service), name="device") as server:
        body = {"model": service.weak_name, "max_tokens": 4}

        def send(client: httpx.Client, i: int) -> tuple[int, str | None, float]:
            response, ms = timed(lambda: client.post(f"{server.url}/v1/chat/completions", json={
                **body, "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}))
            return response.status_code, response.headers.get("x-hybrid-router-decision-id"), ms

        results, elapsed = hammer(clients, requests, send)
    records = {r.decision_id: r for r in log.records()}
    ids = Counter(decision_id for _, decision_id, _ in results if decision_id)
    totals = [ms for _, _, ms in results]
    over = [overhead_ms(ms, records[d]) for _, d, ms in results if d in records]
    return {"clients": clients, "requests": requests, "statuses": dict(Counter(s for s, _, _ in results)),
            "seconds": round(elapsed, 1), "total_ms": percentiles(totals), "routing_overhead_ms": percentiles(over),
            "records": len(records), "answers_without_record": sum(1 for d in ids if d not in records),
            "duplicated_ids": sum(1 for n in ids.values() if n > 1), "records_without_answer": len(set(records) - set(ids))}


def moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto did not start")


def cloud(clients: int, requests: int) -> dict[str, Any]:
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    process, dynamodb = moto()
    model = LlamaTextModel(resolve_model("smollm2"), n_ctx=1024, n_threads=1)
    container = ServerThread(create_container_app(model), name="container").start()
    runtime = ServerThread(create_runtime_app({ENDPOINT: container.url}), name="runtime").start()
    try:
        client = make_client(endpoint_url=dynamodb, region="us-east-1")
        table = f"bench-{uuid.uuid4().hex[:8]}"
        create_table(client, table)
        settings = ApiSettings(table_name=table, dynamodb_endpoint_url=dynamodb, region="us-east-1",
                               api_keys=parse_key_map(f"{KEY}=bench/device"), strong_endpoint_name=ENDPOINT,
                               sagemaker_endpoint_url=runtime.url, strong_model_name="strong-model",
                               default_max_tokens=4)
        store = DynamoDecisionStore(table, client=client)
        out: dict[str, Any] = {"clients": clients}
        with ServerThread(create_api(settings), name="cloud-api") as api:
            headers = {"x-api-key": KEY}

            def route(http: httpx.Client, i: int) -> tuple[int, float]:
                response, ms = timed(lambda: http.post(f"{api.url}/v1/route", headers=headers,
                                                       json={"prompt": PROMPTS[i % len(PROMPTS)]}))
                return response.status_code, ms

            results, elapsed = hammer(clients, requests, route)
            out["route"] = {"requests": requests, "statuses": dict(Counter(s for s, _ in results)),
                            "seconds": round(elapsed, 1), "total_ms": percentiles([ms for _, ms in results])}

            def chat(http: httpx.Client, i: int) -> tuple[int, str | None, float]:
                response, ms = timed(lambda: http.post(f"{api.url}/v1/chat/completions", headers=headers, json={
                    "model": "strong-model", "max_tokens": 4,
                    "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}))
                routing = response.json().get("routing") or {} if response.status_code == 200 else {}
                return response.status_code, routing.get("decision_id"), ms

            results, elapsed = hammer(clients, requests, chat)
            stored = {r.decision_id: r for r in store.records_for_device("bench", "device")}
            ids = Counter(d for _, d, _ in results if d)
            over = [overhead_ms(ms, stored[d]) for _, d, ms in results if d in stored]
            out["chat"] = {"requests": requests, "statuses": dict(Counter(s for s, _, _ in results)),
                           "seconds": round(elapsed, 1), "total_ms": percentiles([ms for _, _, ms in results]),
                           "routing_overhead_ms": percentiles(over), "items": len(stored),
                           "answers_without_record": sum(1 for d in ids if d not in stored),
                           "duplicated_ids": sum(1 for n in ids.values() if n > 1)}

            uploads = [DecisionRecord(decision_id=new_ulid(), router_id="mf", router_version="1", score=0.2,
                                      threshold=0.5, route="weak", weak_model="smollm2", strong_model="strong-model",
                                      model_used="smollm2", prompt_tokens=5, completion_tokens=3,
                                      router_latency_ms=0.5, generation_latency_ms=40.0, cost_usd=1e-6,
                                      strong_cost_usd=1e-4).model_dump(mode="json") for _ in range(requests)]

            def upload(http: httpx.Client, i: int) -> tuple[int, float, dict[str, Any]]:
                record = uploads[i % requests]
                response, ms = timed(lambda: http.post(f"{api.url}/v1/decisions", headers=headers,
                                                       json={"records": [record]}))
                return response.status_code, ms, response.json()

            results, elapsed = hammer(clients, 2 * requests, upload)  # each record twice: once new, once a re-send
            after = {r.decision_id for r in store.records_for_device("bench", "device")} - set(stored)
            sent = {r["decision_id"] for r in uploads}
            out["decisions"] = {"requests": 2 * requests, "statuses": dict(Counter(s for s, _, _ in results)),
                                "seconds": round(elapsed, 1), "total_ms": percentiles([ms for _, ms, _ in results]),
                                "accepted": sum(r.get("accepted", 0) for _, _, r in results),
                                "duplicates": sum(r.get("duplicates", 0) for _, _, r in results),
                                "stored": len(after & sent), "missing": len(sent - after)}
        return out
    finally:
        runtime.stop()
        container.stop()
        process.terminate()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--only", choices=["device", "cloud"])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        if args.only in (None, "device"):
            results["device"] = device(args.clients, args.requests, Path(work))
        if args.only in (None, "cloud"):
            results["cloud"] = cloud(args.clients, args.requests)
    print(json.dumps(results, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
