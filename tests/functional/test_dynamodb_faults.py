"""DynamoDB failing on the wire during ingest and sync: throttling, internal errors, unavailability and replies
lost after the write, injected by local_stack.dynamodb_faults between the cloud API's production client and the
moto DynamoDB server. What must hold: no record lost, none stored twice, no 5xx the device cannot retry, and the
device's log agrees with the table in the end.

Figures (RELIABILITY.md) come from the `FIGURE` lines: `pytest -s tests/functional/test_dynamodb_faults.py`."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter

import httpx
import pytest
import uvicorn

from edge_client.sync import SyncError, sync_decisions
from hybrid_router.api.app import create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.api.settings import ApiSettings
from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.dynamodb_faults import DynamoDBFaults, DynamoFaultPlan

API_KEY = "device-key-faults"
TENANT, DEVICE = "acme", "laptop-faults"


@pytest.fixture
def faulty_cloud(dynamodb_endpoint, dynamodb_client, decision_table):
    """The records API on uvicorn whose store talks to DynamoDB through the fault proxy.
    Yields (api_url, proxy, store_without_faults)."""
    proxy = DynamoDBFaults(dynamodb_endpoint, DynamoFaultPlan(rate=0.0, seed=11)).start()
    store = DynamoDecisionStore(decision_table, client=make_client(endpoint_url=proxy.url, region="us-east-1"))
    settings = ApiSettings(table_name=decision_table, api_keys=parse_key_map(f"{API_KEY}={TENANT}/{DEVICE}"))
    app = create_app(settings, groups=("records",), store=store)
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield (
            f"http://127.0.0.1:{sock.getsockname()[1]}",
            proxy,
            DynamoDecisionStore(decision_table, client=dynamodb_client),
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        proxy.stop()


def _ids_in_table(store: DynamoDecisionStore) -> Counter[str]:
    return Counter(record.decision_id for record in store.records_for_device(TENANT, DEVICE))


def test_sync_through_a_failing_dynamodb_loses_and_doubles_nothing(faulty_cloud, tmp_path, make_decision):
    url, proxy, table = faulty_cloud
    proxy.plan = DynamoFaultPlan(rate=0.3, seed=3)
    records = [make_decision("strong" if i % 3 == 0 else "weak") for i in range(300)]
    with DecisionLog(tmp_path / "device.db") as log:
        log.append_many(records)
        runs, errors = 0, []
        while log.pending_count() and runs < 20:  # what a device does: sync again later
            runs += 1
            try:
                sync_decisions(
                    log, url, api_key=API_KEY, batch_size=25, max_retries=8, base_delay_s=0.01, max_delay_s=0.05
                )
            except SyncError as error:
                errors.append(str(error))
        pending = log.pending_count()
    in_table = _ids_in_table(table)
    print(
        f"FIGURE sync: {len(records)} records, {proxy.injected} DynamoDB faults injected "
        f"({dict(proxy.counts)}), {runs} sync runs, {len(errors)} gave up; lost "
        f"{len(set(r.decision_id for r in records) - set(in_table))}, doubled "
        f"{sum(n - 1 for n in in_table.values())}"
    )
    assert proxy.injected >= 50  # the faults really happened
    assert pending == 0
    assert sorted(in_table) == sorted(r.decision_id for r in records)
    assert set(in_table.values()) == {1}


def test_ingest_through_a_failing_dynamodb_answers_only_retryable_errors(faulty_cloud, make_decision):
    """A client re-sending each batch until it is taken, as the API's 502/503 bodies tell it to."""
    url, proxy, table = faulty_cloud
    proxy.plan = DynamoFaultPlan(rate=0.5, seed=5)
    records = [make_decision() for _ in range(200)]
    statuses: Counter[int] = Counter()
    accepted = duplicates = 0
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=60) as http:
        for start in range(0, len(records), 20):
            body = {"records": [r.model_dump(mode="json") for r in records[start : start + 20]]}
            for _ in range(30):
                response = http.post("/v1/decisions", json=body)
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    answer = response.json()
                    assert answer["failed"] == []
                    accepted += answer["accepted"]
                    duplicates += answer["duplicates"]
                    break
                assert response.status_code in (502, 503), response.text
                assert response.headers["retry-after"]
                assert "Re-send the batch" in response.json()["error"]["message"]
            else:
                pytest.fail(f"batch at {start} never taken: {statuses}")
    in_table = _ids_in_table(table)
    print(
        f"FIGURE ingest: {len(records)} records in 10 batches, {proxy.injected} DynamoDB faults injected "
        f"({dict(proxy.counts)}), answers {dict(statuses)}; stored {len(in_table)}, doubled "
        f"{sum(n - 1 for n in in_table.values())}"
    )
    assert sorted(in_table) == sorted(r.decision_id for r in records)
    assert set(in_table.values()) == {1}
    assert accepted == len(records) - duplicates  # a re-sent batch's stored records come back as duplicates


def test_lost_replies_after_the_write_are_counted_once(faulty_cloud, make_decision):
    """Every write applied and its answer lost: boto3 retries, finds the item, and the API calls it a duplicate
    or a new record but never stores it twice."""
    url, proxy, table = faulty_cloud
    proxy.plan = DynamoFaultPlan(rate=0.4, kinds=("lost_reply",), seed=9)
    records = [make_decision() for _ in range(60)]
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=60) as http:
        for start in range(0, len(records), 20):
            body = {"records": [r.model_dump(mode="json") for r in records[start : start + 20]]}
            for _ in range(20):
                response = http.post("/v1/decisions", json=body)
                if response.status_code == 200:
                    break
                assert response.status_code in (502, 503), response.text
    in_table = _ids_in_table(table)
    assert proxy.counts["lost_reply"] >= 10
    assert sorted(in_table) == sorted(r.decision_id for r in records)
    assert set(in_table.values()) == {1}


@pytest.mark.parametrize("kind", ["internal", "unavailable", "throttle"])
def test_a_dynamodb_that_keeps_failing_is_a_retryable_answer_and_the_resend_stores_once(
    faulty_cloud, make_decision, kind
):
    """Every write failing past boto3's retries: the batch is answered 503 with Retry-After (never a 500 or a
    partial success the client could mistake), and once DynamoDB is back the same batch is stored exactly once."""
    url, proxy, table = faulty_cloud
    records = [make_decision() for _ in range(5)]
    body = {"records": [r.model_dump(mode="json") for r in records]}
    with httpx.Client(base_url=url, headers={"x-api-key": API_KEY}, timeout=60) as http:
        proxy.plan = DynamoFaultPlan(rate=1.0, kinds=(kind,), seed=1)
        failing = http.post("/v1/decisions", json=body)
        assert failing.status_code == 503, failing.text  # retryable: DynamoDB may pass it later
        assert failing.headers["retry-after"] and "Re-send the batch" in failing.json()["error"]["message"]
        assert proxy.counts[kind] >= len(records)
        proxy.plan = DynamoFaultPlan(rate=0.0)
        again = http.post("/v1/decisions", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["accepted"] + again.json()["duplicates"] == len(records)
    in_table = _ids_in_table(table)
    assert sorted(in_table) == sorted(r.decision_id for r in records) and set(in_table.values()) == {1}
