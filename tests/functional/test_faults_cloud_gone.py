"""The cloud API stopped in the middle of a `sync` and started again: the device loses nothing, the cloud counts
nothing twice, and the interrupted run says what happened. Real parts: uvicorn, moto's DynamoDB server, SQLite."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread
from test_api_support import table  # noqa: F401

from edge_client.sync import SyncError, sync_decisions
from tests.conftest import free_port

KEY = "key-device-a"
RECORDS = 1000


def test_the_cloud_stopped_mid_sync_loses_nothing_and_doubles_nothing(table, dynamodb_endpoint, dynamodb_client,  # noqa: F811
                                                                       tmp_path, make_decision) -> None:
    settings = ApiSettings(table_name=table, dynamodb_endpoint_url=dynamodb_endpoint, region="us-east-1",
                           api_keys=parse_key_map(f"{KEY}=acme/device-a"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db = tmp_path / "device.db"
    records = [make_decision("strong" if i % 5 == 0 else "weak") for i in range(RECORDS)]
    with DecisionLog(db) as log:
        log.append_many(records)
    outcome: dict[str, object] = {}

    def first_run() -> None:
        with DecisionLog(db) as log:
            try:
                outcome["report"] = sync_decisions(log, url, api_key=KEY, batch_size=10, max_retries=2,
                                                   base_delay_s=0.05, max_delay_s=0.2)
            except SyncError as exc:
                outcome["error"] = exc

    api = ServerThread(create_app(settings, groups=("records",)), port=port, name="cloud-api").start()
    runner = threading.Thread(target=first_run)
    runner.start()
    with DecisionLog(db) as watch:
        deadline = time.monotonic() + 120
        while watch.pending_count() > RECORDS - 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        api.stop()  # mid-sync: batches in flight are cut, later ones find nothing listening
        stopped_at = RECORDS - watch.pending_count()
    runner.join(timeout=120)
    assert "error" in outcome and "report" not in outcome, outcome  # the run says it could not finish
    assert "gave up after 3 attempts" in str(outcome["error"])  # the pending records stay pending
    with DecisionLog(db) as log:
        assert 200 <= RECORDS - log.pending_count() < RECORDS
        api = ServerThread(create_app(settings, groups=("records",)), port=port, name="cloud-api").start()
        try:
            report = sync_decisions(log, url, api_key=KEY, batch_size=50)
            usage = httpx.get(f"{url}/v1/usage", headers={"x-api-key": KEY}, timeout=60).json()["totals"]
        finally:
            api.stop()
        assert (report.remaining, report.failed) == (0, []) and log.pending_count() == 0
        device = log.usage().totals
    stored = DynamoDecisionStore(table, client=dynamodb_client).records_for_device("acme", "device-a")
    assert {r.decision_id for r in stored} == {r.decision_id for r in records}  # nothing lost
    assert (usage["requests"], usage["strong"]) == (device.requests, device.strong) == (RECORDS, RECORDS // 5)
    assert usage["cost_usd"] == pytest.approx(device.cost_usd, rel=1e-9)  # nothing counted twice
    print(f"\ncloud stopped after {stopped_at} of {RECORDS} records were synced; first run: "
          f"{type(outcome['error']).__name__}: {outcome['error']}; second run sent {report.sent}, accepted "
          f"{report.accepted}, duplicates {report.duplicates}; stored {len(stored)}, lost 0, duplicated 0")
