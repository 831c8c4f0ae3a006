"""The cloud API stopped in the middle of a `sync` or of a streamed answer, then started again: the device loses
nothing, the cloud counts nothing twice, and the user or the interrupted run hears what happened. Real parts:
uvicorn, moto's DynamoDB server, SQLite, the device server; the models are in-process stand-ins."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Generator
from typing import Any

import httpx
import pytest
from test_api_support import table  # noqa: F401
from test_edge_server import ALWAYS_STRONG, make_service, router_dir  # noqa: F401
from test_edge_server import ServerThread as EdgeServer
from test_edge_trust import CountingModel

from edge_client.config import Settings
from edge_client.factory import build_strong
from edge_client.server import create_app as create_app_edge
from edge_client.sync import SyncError, sync_decisions
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.backends.base import Completion, StreamResult
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread
from tests.conftest import free_port

KEY = "key-device-a"
RECORDS = 1000


class SlowStrongModel:
    """The cloud's strong model: 200 pieces, 20 ms apart (a 4-second answer to cut in the middle)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def complete(self, messages: list[dict], max_tokens: int = 256, **options: Any) -> Completion:
        return Completion(text="word " * 200, model=self.name, prompt_tokens=5, completion_tokens=200)

    def stream(self, messages: list[dict], max_tokens: int = 256, **options: Any) -> Generator[str, None, StreamResult]:
        for _ in range(200):
            time.sleep(0.02)
            yield "word "
        return StreamResult(prompt_tokens=5, completion_tokens=200)


def test_the_cloud_stopped_mid_stream_leaves_one_record_and_a_clear_end(
    table,
    dynamodb_endpoint,  # noqa: F811
    dynamodb_client,
    tmp_path,
    router_dir,
) -> None:  # noqa: F811
    """The device streams a strong answer from the cloud; the cloud stops mid-answer. The user gets what was sent,
    then an error event and [DONE]; the device keeps one record of the request, which `sync` stores once."""
    settings = ApiSettings(
        router_path=str(router_dir),
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/device-a"),
        strong_model_name="strong-model",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = ServerThread(
        create_app(settings, strong_backend=SlowStrongModel("strong-model")), port=port, name="cloud-api"
    ).start()
    strong = build_strong(Settings(strong_kind="cloud", cloud_url=url, api_key=KEY, strong_model="strong-model"))
    service = make_service(tmp_path, router_dir, CountingModel("weak-model"), strong)
    events: list[dict[str, Any]] = []
    with EdgeServer(create_app_edge(service)) as edge:
        body = {"model": ALWAYS_STRONG, "stream": True, "messages": [{"role": "user", "content": "Tell a story."}]}
        with httpx.stream("POST", edge.url + "/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                if line == "data: [DONE]":
                    events.append({"done": True})
                    break
                events.append(json.loads(line[6:]))
                if len(events) == 20:
                    threading.Thread(target=api.stop).start()  # the cloud goes away mid-answer
    pieces = [e for e in events if e.get("choices") and e["choices"][0]["delta"].get("content")]
    errors = [e["error"] for e in events if "error" in e]
    assert 10 <= len(pieces) < 200 and len(errors) == 1 and events[-1] == {"done": True}, events[-3:]
    assert "broke off" in errors[0]["message"] and "Traceback" not in errors[0]["message"]
    records = service.log.records()
    assert len(records) == 1 and records[0].status == "error" and records[0].route == "strong"
    assert 0 < records[0].completion_tokens < 200
    api = ServerThread(
        create_app(settings, strong_backend=SlowStrongModel("strong-model")), port=port, name="cloud-api"
    ).start()
    try:
        report = sync_decisions(service.log, url, api_key=KEY)
    finally:
        api.stop()
    assert (report.sent, report.failed, report.remaining) == (1, [], 0)
    stored = DynamoDecisionStore(table, client=dynamodb_client).records_for_device("acme", "device-a")
    assert [r.decision_id for r in stored] == [records[0].decision_id]
    print(
        f"\ncloud stopped mid-stream: the user got {len(pieces)} pieces, then {errors[0]['code']!r} and [DONE]; "
        f"device records 1 (status {records[0].status}, {records[0].completion_tokens} tokens); "
        f"after sync the table holds {len(stored)} item for it: lost 0, duplicated 0"
    )


def test_the_cloud_stopped_mid_sync_loses_nothing_and_doubles_nothing(
    table,
    dynamodb_endpoint,
    dynamodb_client,  # noqa: F811
    tmp_path,
    make_decision,
) -> None:
    settings = ApiSettings(
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/device-a"),
    )
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
                outcome["report"] = sync_decisions(
                    log, url, api_key=KEY, batch_size=10, max_retries=2, base_delay_s=0.05, max_delay_s=0.2
                )
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
    print(
        f"\ncloud stopped after {stopped_at} of {RECORDS} records were synced; first run: "
        f"{type(outcome['error']).__name__}: {outcome['error']}; second run sent {report.sent}, accepted "
        f"{report.accepted}, duplicates {report.duplicates}; stored {len(stored)}, lost 0, duplicated 0"
    )
