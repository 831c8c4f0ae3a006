"""Faults on the wire between the cloud API and DynamoDB, during `sync`: a proxy in front of moto's DynamoDB server
answers some calls with throttling or a 500 without passing them on, and passes some on and then answers 500 (the
write happened, the caller hears it failed). The device syncs 600 records through it; every record must end up in
the table exactly once, and the device's log must know it."""

from __future__ import annotations

import itertools
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread
from test_api_support import table, tiny_router_dir  # noqa: F401

from edge_client.sync import sync_decisions

KEY = "key-device-a"
RECORDS = 600
THROTTLE = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                       "message": "The level of configured provisioned throughput for the table was exceeded."})
INTERNAL = json.dumps({"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError",
                       "message": "Internal server error"})
# Call n (from 0) of the API's DynamoDB calls meets FAULTS[n % len(FAULTS)]: 3 in 10 calls go wrong.
FAULTS = ["pass", "throttle", "pass", "pass", "error", "pass", "pass", "write-then-error", "pass", "pass"]


class FaultProxy(BaseHTTPRequestHandler):
    upstream = ""
    calls = itertools.count()
    seen: Counter = Counter()
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.lock:
            fault = FAULTS[next(self.calls) % len(FAULTS)]
            self.seen[fault] += 1
        if fault in ("pass", "write-then-error"):
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = httpx.post(self.upstream, content=body, headers=headers, timeout=30)
            status, payload = answer.status_code, answer.content
            if fault == "write-then-error":
                status, payload = 500, INTERNAL.encode()
        else:
            status, payload = (400, THROTTLE.encode()) if fault == "throttle" else (500, INTERNAL.encode())
        self.send_response(status)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def faulty_dynamodb(dynamodb_endpoint) -> Iterator[str]:
    FaultProxy.upstream, FaultProxy.calls, FaultProxy.seen = dynamodb_endpoint, itertools.count(), Counter()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaultProxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sync_through_throttling_and_5xx_loses_nothing_and_doubles_nothing(tiny_router_dir, table, faulty_dynamodb,
                                                                            dynamodb_client, tmp_path,
                                                                            make_decision) -> None:
    settings = ApiSettings(router_path=str(tiny_router_dir), table_name=table, dynamodb_endpoint_url=faulty_dynamodb,
                           region="us-east-1", api_keys=parse_key_map(f"{KEY}=acme/device-a"))
    records = [make_decision("strong" if i % 4 == 0 else "weak") for i in range(RECORDS)]
    with ServerThread(create_app(settings), name="cloud-api") as api, DecisionLog(tmp_path / "device.db") as log:
        assert log.append_many(records) == RECORDS
        reports = []
        for _ in range(5):  # a sync that gives up on a batch leaves it pending; the next run sends it again
            try:
                reports.append(sync_decisions(log, api.url, api_key=KEY, batch_size=25, base_delay_s=0.05,
                                              max_delay_s=0.5, max_retries=8))
            except Exception as exc:  # noqa: BLE001 - a run that gave up; what matters is what is stored
                reports.append(exc)
            if log.pending_count() == 0:
                break
        assert log.pending_count() == 0 and log.count() == RECORDS
        device = log.usage().totals
        cloud = httpx.get(f"{api.url}/v1/usage", headers={"x-api-key": KEY}, timeout=60)
    stored = DynamoDecisionStore(table, client=dynamodb_client).records_for_device("acme", "device-a")
    assert {record.decision_id for record in stored} == {record.decision_id for record in records}  # nothing lost
    totals = cloud.json()["totals"]  # nothing counted twice: the cloud's usage is the device's
    assert (totals["requests"], totals["strong"]) == (device.requests, device.strong) == (RECORDS, RECORDS // 4)
    assert totals["cost_usd"] == pytest.approx(device.cost_usd, rel=1e-9)
    faults = {kind: count for kind, count in FaultProxy.seen.items() if kind != "pass"}
    assert faults["throttle"] and faults["error"] and faults["write-then-error"]
    print(f"\n{RECORDS} records synced through {sum(FaultProxy.seen.values())} DynamoDB calls, faults injected "
          f"{faults}; sync runs {len(reports)}; stored {len(stored)}, lost 0, duplicated 0")
