"""Load, loopback only: concurrent clients against the device server (real local model) and the cloud API.

    OMP_NUM_THREADS=1 .venv/bin/python bench/load.py [--clients 50] [--device-requests 200] [--route-requests 500]
        [--chat-requests 100] [--ingest-records 500] [--max-tokens 4] [--json]

It starts the local stack (moto DynamoDB, the SageMaker-runtime stand-in running SmolLM2 as the strong model, the
cloud API under uvicorn) and a device server whose strong model is that cloud, then runs four phases, each with
`--clients` threads sharing the requests:

    device   POST /v1/chat/completions on the device server, model "router" (routed both ways; past the local
             queue limit a request overflows strong, reason fallback:local_busy)
    route    POST /v1/route on the cloud (decision only)
    chat     POST /v1/chat/completions on the cloud, model "strong"
    ingest   POST /v1/decisions on the cloud, 10 new records a request, then every batch sent again

For each: requests, statuses, p50/p99 of total latency and of the routing overhead (total minus the generation and
queue time its decision record holds: HTTP, routing, logging), and the records check: every answered request has
exactly one record (device: SQLite; cloud: DynamoDB), none lost, none doubled.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

PROMPTS = [
    "Say hello.",
    "What is 2 + 2?",
    "Name a colour.",
    "Prove that there are infinitely many primes.",
    "Write a Python function that merges two sorted lists.",
    "Explain how a transistor works.",
]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


@dataclass
class Phase:
    name: str
    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    total_p50_ms: float = 0.0
    total_p99_ms: float = 0.0
    overhead_p50_ms: float | None = None
    overhead_p99_ms: float | None = None
    records_expected: int = 0
    records_found: int = 0
    records_lost: int = 0
    records_doubled: int = 0
    notes: str = ""


def _run(
    clients: int, count: int, call: Callable[[httpx.Client, int], tuple[int, float, Any]]
) -> tuple[list[tuple[int, float, Any]], float]:
    local = threading.local()

    def one(i: int) -> tuple[int, float, Any]:
        if not hasattr(local, "http"):
            local.http = httpx.Client(timeout=300)
        return call(local.http, i)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(count)))
    return results, time.perf_counter() - started


def _timed(send: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    began = time.perf_counter()
    response = send()
    return response, (time.perf_counter() - began) * 1000.0


def _summarise(phase: Phase, results: list[tuple[int, float, Any]], seconds: float) -> None:
    phase.requests = len(results)
    phase.statuses = {str(k): v for k, v in sorted(Counter(status for status, _, _ in results).items())}
    phase.seconds = round(seconds, 2)
    totals = [ms for _, ms, _ in results]
    phase.total_p50_ms, phase.total_p99_ms = round(percentile(totals, 50), 1), round(percentile(totals, 99), 1)


def _overheads(phase: Phase, totals_by_id: dict[str, float], records: dict[str, Any]) -> None:
    overheads = [
        totals_by_id[i] - r.generation_latency_ms - r.queue_latency_ms for i, r in records.items() if i in totals_by_id
    ]
    if overheads:
        phase.overhead_p50_ms = round(percentile(overheads, 50), 1)
        phase.overhead_p99_ms = round(percentile(overheads, 99), 1)


def _check(phase: Phase, expected: list[str], found: Counter[str]) -> None:
    phase.records_expected = len(expected)
    phase.records_found = sum(1 for i in expected if found[i] >= 1)
    phase.records_lost = sum(1 for i in expected if found[i] == 0)
    phase.records_doubled = sum(found[i] - 1 for i in expected if found[i] > 1)


def device_phase(url: str, service: Any, clients: int, count: int, max_tokens: int) -> Phase:
    phase = Phase("device server: POST /v1/chat/completions (real SmolLM2, model router)")

    def call(http: httpx.Client, i: int) -> tuple[int, float, Any]:
        body = {
            "model": "router",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}],
        }
        response, ms = _timed(lambda: http.post(f"{url}/v1/chat/completions", json=body))
        return response.status_code, ms, response.headers.get("x-hybrid-router-decision-id")

    results, seconds = _run(clients, count, call)
    _summarise(phase, results, seconds)
    records = service.log.records()
    found = Counter(r.decision_id for r in records)
    ids = [decision_id for _, _, decision_id in results if decision_id]
    _check(phase, ids, found)
    phase.records_doubled += len(records) - len(found)  # any id in the log twice
    extra = len(found) - len(set(ids))
    by_id = {r.decision_id: r for r in records}
    _overheads(phase, {i: ms for _, ms, i in results if i}, {i: by_id[i] for i in ids if i in by_id})
    routes = Counter((r.route, r.reason) for r in records)
    phase.notes = (
        f"{len(records)} records for {count} requests ({extra} without a decision id in the answer); "
        f"routes {dict(routes)}"
    )
    return phase


def route_phase(url: str, key: str, clients: int, count: int) -> Phase:
    phase = Phase("cloud: POST /v1/route")

    def call(http: httpx.Client, i: int) -> tuple[int, float, Any]:
        body = {"prompt": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}
        response, ms = _timed(lambda: http.post(f"{url}/v1/route", json=body, headers={"x-api-key": key}))
        return response.status_code, ms, None

    results, seconds = _run(clients, count, call)
    _summarise(phase, results, seconds)
    phase.overhead_p50_ms, phase.overhead_p99_ms = phase.total_p50_ms, phase.total_p99_ms  # all of it is overhead
    phase.notes = "decision only: no record is owed"
    return phase


def chat_phase(
    url: str, key: str, store: Any, tenant: str, device: str, clients: int, count: int, max_tokens: int
) -> Phase:
    phase = Phase("cloud: POST /v1/chat/completions (model strong, SmolLM2 stand-in)")

    def call(http: httpx.Client, i: int) -> tuple[int, float, Any]:
        body = {
            "model": "strong",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": f"{PROMPTS[i % len(PROMPTS)]} ({i})"}],
        }
        response, ms = _timed(lambda: http.post(f"{url}/v1/chat/completions", json=body, headers={"x-api-key": key}))
        decision_id = response.json().get("routing", {}).get("decision_id") if response.status_code == 200 else None
        return response.status_code, ms, decision_id

    results, seconds = _run(clients, count, call)
    _summarise(phase, results, seconds)
    records = store.records_for_device(tenant, device)
    found = Counter(r.decision_id for r in records)
    ids = [decision_id for _, _, decision_id in results if decision_id]
    _check(phase, ids, found)
    by_id = {r.decision_id: r for r in records}
    _overheads(phase, {i: ms for _, ms, i in results if i}, {i: by_id[i] for i in ids if i in by_id})
    return phase


def _records(n: int) -> list[dict[str, Any]]:
    from hybrid_router.decision import DecisionRecord
    from hybrid_router.ulid import new_ulid

    return [
        DecisionRecord(
            decision_id=new_ulid(),
            tenant_id="local",
            device_id="local",
            router_id="load",
            router_version="1",
            score=0.4,
            threshold=0.5,
            route="weak",
            reason="routed",
            weak_model="w",
            strong_model="s",
            model_used="w",
            prompt_tokens=12,
            completion_tokens=4,
            router_latency_ms=0.5,
            generation_latency_ms=40.0,
            cost_usd=0.0,
            strong_cost_usd=1e-4,
            energy_wh=0.001,
        ).model_dump(mode="json")
        for _ in range(n)
    ]


def ingest_phase(url: str, key: str, store: Any, tenant: str, device: str, clients: int, count: int) -> Phase:
    phase = Phase("cloud: POST /v1/decisions (10 records a request, then all sent again)")
    batches = [_records(10) for _ in range(max(1, count // 10))]
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def call(http: httpx.Client, i: int) -> tuple[int, float, Any]:
        batch = batches[i % len(batches)]
        response, ms = _timed(
            lambda: http.post(f"{url}/v1/decisions", json={"records": batch}, headers={"x-api-key": key})
        )
        if response.status_code == 200:
            with lock:
                answers.append(response.json())
        return response.status_code, ms, None

    results, seconds = _run(clients, 2 * len(batches), call)
    _summarise(phase, results, seconds)
    found = Counter(r.decision_id for r in store.records_for_device(tenant, device))
    ids = [record["decision_id"] for batch in batches for record in batch]
    _check(phase, ids, found)
    accepted = sum(a["accepted"] for a in answers)
    duplicates = sum(a["duplicates"] for a in answers)
    phase.notes = f"{accepted} accepted, {duplicates} duplicates for {len(ids)} records sent twice"
    return phase


def markdown(phases: list[Phase], clients: int) -> str:
    lines = [
        f"| phase ({clients} clients) | requests | statuses | total p50 / p99 | overhead p50 / p99 | "
        "records: expected / found / lost / doubled |",
        "| --- | ---: | --- | --- | --- | --- |",
    ]
    for p in phases:
        overhead = "–" if p.overhead_p50_ms is None else f"{p.overhead_p50_ms} / {p.overhead_p99_ms} ms"
        checked = (
            "no records owed"
            if p.records_expected == 0 and not p.records_found
            else f"{p.records_expected} / {p.records_found} / {p.records_lost} / {p.records_doubled}"
        )
        lines.append(
            f"| {p.name} | {p.requests} | {p.statuses} | {p.total_p50_ms} / {p.total_p99_ms} ms | "
            f"{overhead} | {checked} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--device-requests", type=int, default=200)
    parser.add_argument("--route-requests", type=int, default=500)
    parser.add_argument("--chat-requests", type=int, default=100)
    parser.add_argument("--ingest-records", type=int, default=500)
    parser.add_argument("--max-tokens", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from edge_client.config import Settings
    from edge_client.factory import build_service
    from edge_client.server import create_app
    from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client
    from local_stack.servers import ServerThread
    from local_stack.stack import start_stack

    with (
        tempfile.TemporaryDirectory() as scratch,
        start_stack("smollm2", n_threads=1, state_file=None, table_name=f"load-{uuid.uuid4().hex[:8]}") as stack,
    ):
        info = stack.info
        store = DynamoDecisionStore(
            info.table_name, client=make_client(endpoint_url=info.dynamodb_url, region=info.region)
        )
        settings = Settings(
            cloud_url=info.api_url,
            api_key=info.api_key,
            data_dir=str(Path(scratch) / "device"),
            n_threads=1,
            tenant_id=info.tenant,
            device_id=info.device,
            strong_share=0.5,
            max_tokens=args.max_tokens,
        )
        service = build_service(settings)
        service.weak.load()
        with ServerThread(create_app(service), name="device") as device:
            phases = [device_phase(device.url, service, args.clients, args.device_requests, args.max_tokens)]
        phases.append(route_phase(info.api_url, info.api_key, args.clients, args.route_requests))
        phases.append(
            chat_phase(
                info.api_url,
                info.api_key,
                store,
                info.tenant,
                info.device,
                args.clients,
                args.chat_requests,
                args.max_tokens,
            )
        )
        phases.append(
            ingest_phase(info.api_url, info.api_key, store, info.tenant, info.device, args.clients, args.ingest_records)
        )
    if args.json:
        print(json.dumps([asdict(p) for p in phases], indent=2))
    else:
        print(markdown(phases, args.clients))
        for p in phases:
            if p.notes:
                print(f"- {p.name}: {p.notes}")
    broken = [
        p.name for p in phases if p.records_lost or p.records_doubled or any(s.startswith("5") for s in p.statuses)
    ]
    if broken:
        print(f"FAILED: lost/doubled records or 5xx in {broken}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
