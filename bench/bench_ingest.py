"""Decisions per second ingested through DynamoDecisionStore.put_records into a local DynamoDB server (moto).

    python bench/bench_ingest.py [--records 1000] [--batch 100] [--runs 3] [--workers 8] [--endpoint URL]

Starts `python -m moto.server` on a free port unless --endpoint is given; a fresh table per run;
prints one JSON line per run and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

from hybrid_router.decision import DecisionRecord
from hybrid_router.stores.dynamodb import DynamoDecisionStore, create_table, make_client

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def _records(n: int) -> list[DecisionRecord]:
    return [
        DecisionRecord(
            router_id="mf",
            router_version="bench",
            score=(i % 100) / 100,
            threshold=0.5,
            route="strong" if i % 3 == 0 else "weak",
            weak_model="smollm2-135m",
            strong_model="llama-3-70b",
            model_used="x",
            prompt_tokens=120,
            completion_tokens=240,
            router_latency_ms=1.2,
            generation_latency_ms=800.0,
            cost_usd=0.0012,
            strong_cost_usd=0.0012,
            tenant_id="bench",
            device_id=f"dev{i % 10}",
        )
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100, help="records per put_records call (one API request)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="concurrent conditional puts per call")
    parser.add_argument("--endpoint", help="an already running DynamoDB-compatible server")
    args = parser.parse_args()

    proc, endpoint = (None, args.endpoint) if args.endpoint else _start_moto()
    try:
        client = make_client(endpoint, region="us-east-1")
        rates = []
        for run in range(args.runs):
            table = f"bench-{uuid.uuid4().hex[:8]}"
            create_table(client, table)
            store = DynamoDecisionStore(table, client=client, workers=args.workers)
            records = _records(args.records)
            started = time.perf_counter()
            accepted = 0
            for start in range(0, len(records), args.batch):
                result = store.put_records(records[start : start + args.batch])
                assert not result.failed, result.failed[:3]
                accepted += result.accepted
            seconds = time.perf_counter() - started
            assert accepted == args.records
            rates.append(accepted / seconds)
            print(
                json.dumps(
                    {
                        "run": run,
                        "records": accepted,
                        "seconds": round(seconds, 3),
                        "decisions_per_s": round(rates[-1], 1),
                    }
                )
            )
            client.delete_table(TableName=table)
        print(
            json.dumps(
                {
                    "median_decisions_per_s": round(statistics.median(rates), 1),
                    "runs": args.runs,
                    "batch": args.batch,
                    "workers": args.workers,
                    "endpoint": "moto" if proc else endpoint,
                }
            )
        )
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)


if __name__ == "__main__":
    main()
