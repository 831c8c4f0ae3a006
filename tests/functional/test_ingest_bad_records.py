"""Uploads fail record by record: a number DynamoDB cannot hold, or a prompt too long for one item, never fails the
batch; `sync` marks a refused record refused, says so, exits non-zero and goes on with the rest.
Real parts: the cloud API's record routes under uvicorn, moto's DynamoDB server, `python -m edge_client.sync`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.decision import DecisionRecord
from hybrid_router.stores.dynamodb import ITEM_LIMIT_BYTES, DynamoDecisionStore, device_pk
from hybrid_router.stores.sqlite_log import DecisionLog
from hybrid_router.ulid import new_ulid
from local_stack.servers import ServerThread

KEY, TENANT, DEVICE = "key-device-a", "acme", "device-a"


@pytest.fixture
def cloud(decision_table, dynamodb_endpoint, dynamodb_client) -> Iterator[Any]:
    settings = ApiSettings(
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}={TENANT}/{DEVICE}"),
    )
    store = DynamoDecisionStore(decision_table, client=dynamodb_client)
    server = ServerThread(create_app(settings, groups=("records",), store=store), name="cloud-records").start()
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            client.store = store  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def run_sync(log: DecisionLog, url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_client.sync", "--db", str(log.path), "--url", url, "--api-key", KEY, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def stored_item(store: DynamoDecisionStore, decision_id: str) -> dict[str, Any]:
    return store.client.get_item(
        TableName=store.table_name, Key={"pk": {"S": device_pk(TENANT, DEVICE)}, "sk": {"S": f"DECISION#{decision_id}"}}
    )["Item"]


def test_each_bad_number_is_its_own_failure_and_the_good_records_are_stored(cloud, make_decision) -> None:
    good, tiny = make_decision(), make_decision("strong")
    bad = {
        "huge cost": ("cost_usd", 1e200),
        "infinite cost": ("cost_usd", float("inf")),
        "not a number": ("strong_cost_usd", float("nan")),
        "huge tokens": ("prompt_tokens", 10**40),
        "huge latency": ("router_latency_ms", 1e300),
    }
    records = [good.model_dump(mode="json"), dict(tiny.model_dump(mode="json"), generation_latency_ms=1e-200)]
    ids = {}
    for label, (name, value) in bad.items():
        ids[label] = new_ulid()
        records.append(dict(good.model_dump(mode="json"), decision_id=ids[label], **{name: value}))
    body = json.dumps({"records": records})  # Python's json spells Infinity and NaN, as a careless client would
    assert "Infinity" in body and "NaN" in body
    response = cloud.post("/v1/decisions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["duplicates"]) == (2, 0)
    failed = {f["decision_id"]: f["error"] for f in result["failed"]}
    assert set(failed) == set(ids.values())
    for label, (name, _) in bad.items():
        assert failed[ids[label]].startswith("invalid record: ") and name in failed[ids[label]], label
    stored = {r.decision_id: r for r in cloud.store.records_for_device(TENANT, DEVICE)}
    assert set(stored) == {good.decision_id, tiny.decision_id}
    assert stored[tiny.decision_id].generation_latency_ms == 0.0  # below what DynamoDB holds: stored as 0


def test_sync_marks_a_refused_record_goes_on_and_exits_non_zero(cloud, tmp_path, make_decision) -> None:
    with DecisionLog(tmp_path / "device.db") as log:
        first = make_decision()
        # logged by a device before records were range-checked; this version would not make it
        broken = DecisionRecord.model_construct(**{**make_decision().model_dump(), "cost_usd": 1e200})
        late = make_decision(created_at="9999-12-31T23:59:59Z")  # no retention time can be set for it
        rest = [make_decision() for _ in range(5)]
        log.append_many([first, broken, late, *rest])
        done = run_sync(log, str(cloud.base_url))
        assert done.returncode == 1, done.stderr
        assert "refused 2 record(s)" in done.stderr and "Traceback" not in done.stderr
        report = json.loads(done.stdout)
        assert report["stuck"] is True and (report["accepted"], report["remaining"]) == (6, 0)
        assert {f["decision_id"] for f in report["failed"]} == {broken.decision_id, late.decision_id}
        refused = dict(log.refused())
        assert set(refused) == {broken.decision_id, late.decision_id} and "cost_usd" in refused[broken.decision_id]
        assert log.pending_count() == 0 and log.count() == 8
        stored = {r.decision_id for r in cloud.store.records_for_device(TENANT, DEVICE)}
        assert stored == {first.decision_id, *(r.decision_id for r in rest)}

        again = run_sync(log, str(cloud.base_url))  # a refused record is not sent again
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["sent"] == 0 and json.loads(again.stdout)["refused_total"] == 2


def test_a_kept_prompt_of_a_million_characters_syncs_cut_to_fit_and_flagged(cloud, tmp_path, make_decision) -> None:
    prompt = "Summarise this: " + "é" * 999_984
    with DecisionLog(tmp_path / "device.db") as log:
        record = make_decision("strong", prompt=prompt)
        log.append_many([record, make_decision()])
        done = run_sync(log, str(cloud.base_url))
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["accepted"], report["failed"], report["remaining"]) == (2, [], 0)
    item = stored_item(cloud.store, record.decision_id)
    assert item["prompt_truncated"] == {"BOOL": True}
    kept = item["prompt"]["S"]
    assert prompt.startswith(kept) and len(kept.encode("utf-8")) < ITEM_LIMIT_BYTES - 10_000
    assert len(json.dumps(item, ensure_ascii=False).encode("utf-8")) < ITEM_LIMIT_BYTES
    [back] = [r for r in cloud.store.records_for_device(TENANT, DEVICE) if r.decision_id == record.decision_id]
    assert back.prompt == kept and back.cost_usd == record.cost_usd
