"""The cloud records every answer it serves, whatever the caller sends: `x-decision-id` only links that record to the
device's own (uploaded later and merged, so the request counts once), and each id is good for one call of its own
device. Real parts: the cloud API under uvicorn, moto's DynamoDB server, the SageMaker stand-in (llama.cpp)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_api_support import (
    STRONG_ENDPOINT,
    assert_openai_error,
    sagemaker_stand_in,  # noqa: F401
    table,  # noqa: F401
    tiny_router_dir,  # noqa: F401
)

from edge_client.sync import sync_decisions
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.decision import DecisionRecord
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.stores.sqlite_log import DecisionLog
from hybrid_router.ulid import new_ulid
from local_stack.servers import ServerThread

KEY, OTHER_KEY = "key-device-a", "key-device-b"


@pytest.fixture
def cloud(tiny_router_dir, table, dynamodb_endpoint, dynamodb_client, sagemaker_stand_in) -> Iterator[Any]:
    settings = ApiSettings(
        router_path=str(tiny_router_dir),
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/device-a,{OTHER_KEY}=acme/device-b"),
        strong_endpoint_name=STRONG_ENDPOINT,
        sagemaker_endpoint_url=sagemaker_stand_in.url,
        sagemaker_timeout_s=20,
        strong_model_name="strong-model",
        default_max_tokens=8,
    )
    server = ServerThread(create_app(settings), name="cloud-api").start()
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            client.store = DynamoDecisionStore(table, client=dynamodb_client)  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def linked_chat(client: httpx.Client, decision_id: str, key: str = KEY, **extra: Any) -> httpx.Response:
    body = {
        "model": "strong-model",
        "messages": [{"role": "user", "content": "Say hello in French."}],
        "max_tokens": 6,
        **extra,
    }
    return client.post("/v1/chat/completions", json=body, headers={"x-decision-id": decision_id, "x-api-key": key})


def totals(client: httpx.Client, key: str = KEY) -> dict[str, Any]:
    return client.get("/v1/usage", headers={"x-api-key": key}).json()["totals"]


def device_record(decision_id: str, **fields: Any) -> DecisionRecord:
    """What the device logs for a strong answer it asked the cloud for (its own router, its own reason)."""
    values = dict(
        decision_id=decision_id,
        router_id="device-router",
        router_version="7",
        score=0.91,
        threshold=0.5,
        route="strong",
        reason="routed",
        weak_model="smollm2",
        strong_model="strong-model",
        model_used="strong-model",
        router_latency_ms=0.6,
        generation_latency_ms=900.0,
        prompt="Say hello in French.",
    )
    return DecisionRecord(**{**values, **fields})


def test_fresh_decision_ids_on_every_call_no_longer_skip_the_bill(cloud) -> None:
    """Three calls with a fresh x-decision-id each (one streamed): all three are in /v1/usage, at their cost."""
    assert totals(cloud)["requests"] == 0
    ids = [new_ulid() for _ in range(3)]
    for decision_id in ids[:2]:
        answer = linked_chat(cloud, decision_id)
        assert answer.status_code == 200 and answer.json()["routing"]["decision_id"] == decision_id
    streamed = linked_chat(cloud, ids[2], stream=True)
    assert streamed.status_code == 200 and streamed.text.rstrip().endswith("data: [DONE]")
    records = cloud.store.records_for_device("acme", "device-a")
    assert sorted(r.decision_id for r in records) == sorted(ids)
    assert all(r.route == "strong" and r.status == "ok" and r.cost_usd > 0 for r in records)
    usage = totals(cloud)
    assert (usage["requests"], usage["strong"]) == (3, 3)
    assert usage["cost_usd"] == pytest.approx(sum(r.cost_usd for r in records))


def test_a_reused_or_foreign_decision_id_is_refused_before_anything_is_served(cloud) -> None:
    decision_id = new_ulid()
    assert linked_chat(cloud, decision_id).status_code == 200
    assert_openai_error(linked_chat(cloud, decision_id), 409, "decision_id_reused")
    assert_openai_error(linked_chat(cloud, decision_id, key=OTHER_KEY), 409, "decision_id_conflict")
    assert_openai_error(linked_chat(cloud, decision_id, stream=True), 409, "decision_id_reused")
    assert totals(cloud)["requests"] == 1 and totals(cloud, OTHER_KEY)["requests"] == 0


def test_the_devices_record_of_a_linked_call_counts_once_and_never_for_less(cloud) -> None:
    same, cheap, local = new_ulid(), new_ulid(), new_ulid()
    for decision_id in (same, cheap, local):
        assert linked_chat(cloud, decision_id).status_code == 200
    served = {r.decision_id: r for r in cloud.store.records_for_device("acme", "device-a")}
    usage_before = totals(cloud)

    honest = device_record(
        same,
        prompt_tokens=served[same].prompt_tokens,
        completion_tokens=served[same].completion_tokens,
        cost_usd=served[same].cost_usd,
        strong_cost_usd=served[same].strong_cost_usd,
    )
    understated = device_record(cheap, cost_usd=0.0, strong_cost_usd=0.0)
    gave_up = device_record(
        local, route="weak", reason="fallback:strong_timeout", model_used="smollm2", cost_usd=2e-6, energy_wh=0.01
    )
    upload = cloud.post(
        "/v1/decisions", json={"records": [r.model_dump(mode="json") for r in (honest, understated, gave_up)]}
    )
    answer = upload.json()
    assert (answer["accepted"], answer["duplicates"], answer["failed"]) == (3, 0, [])
    charged = {c["decision_id"]: c for c in answer["charged"]}  # the device learns what the cloud counted
    assert sorted(charged) == sorted([cheap, local])
    assert charged[cheap]["cost_usd"] == served[cheap].cost_usd
    assert charged[local]["cost_usd"] == pytest.approx(gave_up.cost_usd + served[local].cost_usd)
    again = cloud.post("/v1/decisions", json={"records": [honest.model_dump(mode="json")]})
    assert again.json() == {"accepted": 0, "duplicates": 1, "failed": [], "charged": []}

    merged = {r.decision_id: r for r in cloud.store.records_for_device("acme", "device-a")}
    assert len(merged) == 3 and totals(cloud)["requests"] == 3
    assert merged[same].model_dump(exclude={"tenant_id", "device_id", "created_at"}) == honest.model_dump(
        exclude={"tenant_id", "device_id", "created_at"}
    )  # the device's own fields, the same cost
    assert merged[same].created_at == served[same].created_at  # the cloud's time
    assert (merged[cheap].router_id, merged[cheap].prompt) == ("device-router", "Say hello in French.")
    assert merged[cheap].cost_usd == served[cheap].cost_usd > 0  # the cloud's served cost is kept
    assert (merged[local].route, merged[local].reason) == ("weak", "fallback:strong_timeout")
    assert merged[local].cost_usd == pytest.approx(served[local].cost_usd + 2e-6)  # both answers were made
    assert totals(cloud)["cost_usd"] == pytest.approx(usage_before["cost_usd"] + 2e-6)


def test_sync_of_the_devices_log_after_linked_calls_matches_usage(cloud, tmp_path) -> None:
    """The demo's check, in small: cloud answers linked by id, a local answer, then sync: usage equals the log."""
    linked = [new_ulid() for _ in range(2)]
    with DecisionLog(tmp_path / "device.db") as log:
        for decision_id in linked:
            body = linked_chat(cloud, decision_id).json()
            log.append(
                device_record(
                    decision_id,
                    prompt_tokens=body["usage"]["prompt_tokens"],
                    completion_tokens=body["usage"]["completion_tokens"],
                    cost_usd=served_cost(cloud, decision_id),
                    strong_cost_usd=served_cost(cloud, decision_id),
                )
            )
        log.append(device_record(new_ulid(), route="weak", model_used="smollm2", cost_usd=1e-6))
        report = sync_decisions(log, str(cloud.base_url), api_key=KEY)
        assert (report.accepted, report.duplicates, report.failed, report.remaining) == (3, 0, [], 0)
        device = log.usage().totals
    cloud_totals = totals(cloud)
    assert (cloud_totals["requests"], cloud_totals["strong"]) == (device.requests, device.strong) == (3, 2)
    assert cloud_totals["cost_usd"] == pytest.approx(device.cost_usd, abs=1e-12)


def served_cost(client: httpx.Client, decision_id: str) -> float:
    return next(r.cost_usd for r in client.store.records_for_device("acme", "device-a") if r.decision_id == decision_id)


def stored_record(client: httpx.Client, decision_id: str, wait_s: float = 5.0) -> DecisionRecord | None:
    deadline = time.monotonic() + wait_s
    while True:
        found = [r for r in client.store.records_for_device("acme", "device-a") if r.decision_id == decision_id]
        if found or time.monotonic() > deadline:
            return found[0] if found else None
        time.sleep(0.1)


def test_a_linked_stream_the_client_hangs_up_on_is_still_billed(cloud) -> None:
    """Tokens streamed under a caller's x-decision-id are recorded by the cloud even if the caller leaves."""
    decision_id = new_ulid()
    body = {
        "model": "strong-model",
        "stream": True,
        "max_tokens": 60,
        "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
    }
    with cloud.stream("POST", "/v1/chat/completions", json=body, headers={"x-decision-id": decision_id}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()
        read = [next(lines) for _ in range(8)]  # the role chunk and the first pieces, then hang up
    assert sum('"content"' in line for line in read) >= 3
    record = stored_record(cloud, decision_id)
    assert record is not None, "the cloud kept no record of a stream it served"
    assert (record.status, record.error, record.route) == ("error", "client_disconnected", "strong")
    assert record.completion_tokens >= 2 and record.cost_usd > 0
    assert record.prompt_tokens > 0  # an interrupted answer still counts its prompt
    assert totals(cloud)["requests"] == 1


def test_an_upload_cannot_move_make_cheaper_or_expire_a_served_record(cloud) -> None:
    """The cloud's numbers, time and expiry stand whatever the device uploads under the same id."""
    decision_id = new_ulid()
    assert linked_chat(cloud, decision_id).status_code == 200
    served = stored_record(cloud, decision_id)
    assert served is not None
    before = totals(cloud)
    rewrite = device_record(decision_id, cost_usd=0.0, strong_cost_usd=0.0, completion_tokens=0)
    two_days_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2 * 86400))
    rewritten = {**rewrite.model_dump(mode="json"), "created_at": two_days_ago}  # inside the upload window
    answer = cloud.post("/v1/decisions", json={"records": [rewritten]}).json()
    assert answer["accepted"] == 1 and answer["failed"] == []
    assert [c["cost_usd"] for c in answer["charged"]] == [served.cost_usd]  # the device learns the cloud's numbers
    merged = stored_record(cloud, decision_id)
    assert merged is not None
    assert (merged.created_at, merged.cost_usd, merged.completion_tokens, merged.route) == (
        served.created_at,
        served.cost_usd,
        served.completion_tokens,
        "strong",
    )
    assert merged.router_id == "device-router"  # what only the device knows is added
    assert totals(cloud)["cost_usd"] == pytest.approx(before["cost_usd"])
    item = cloud.store.client.get_item(
        TableName=cloud.store.table_name,
        Key={"pk": {"S": "DEVICE#acme#device-a"}, "sk": {"S": f"DECISION#{decision_id}"}},
    )["Item"]
    assert int(item["expires_at"]["N"]) > time.time() + 300 * 86400  # from the cloud's clock, not the device's


def test_a_record_uploaded_first_cannot_turn_a_served_strong_answer_weak(cloud) -> None:
    decision_id = new_ulid()
    early = device_record(decision_id, route="weak", reason="routed", model_used="smollm2", cost_usd=1e-7)
    assert cloud.post("/v1/decisions", json={"records": [early.model_dump(mode="json")]}).json()["accepted"] == 1
    assert linked_chat(cloud, decision_id).status_code == 200
    merged = stored_record(cloud, decision_id)
    assert merged is not None and (merged.route, merged.model_used) == ("strong", "strong-model")
    assert merged.cost_usd > 1e-6 and totals(cloud)["strong"] == 1


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00Z", "1971-01-01T00:00:00Z", "2099-01-01T00:00:00Z"])
def test_records_far_from_the_clouds_clock_are_refused_one_by_one(cloud, created_at: str) -> None:
    good = device_record(new_ulid(), route="weak", model_used="smollm2", cost_usd=1e-6)
    bad = {**device_record(new_ulid()).model_dump(mode="json"), "created_at": created_at}
    answer = cloud.post("/v1/decisions", json={"records": [good.model_dump(mode="json"), bad]}).json()
    assert answer["accepted"] == 1 and [f["decision_id"] for f in answer["failed"]] == [bad["decision_id"]]
    assert "upload window" in answer["failed"][0]["error"]


def test_a_streamed_cloud_answer_carries_the_usage_the_cloud_records(cloud) -> None:
    """The device's strong backend asks for stream_options.include_usage; the cloud's last chunk carries the
    tokens of its own record, so the device records them instead of an estimate."""
    from hybrid_router.backends.openai_compat import OpenAICompatBackend

    backend = OpenAICompatBackend(
        str(cloud.base_url) + "/v1", api_key=KEY, model="strong-model", api_key_header="x-api-key"
    )
    decision_id = new_ulid()
    stream = backend.stream([{"role": "user", "content": "What is 2+2?"}], max_tokens=6, decision_id=decision_id)
    while True:
        try:
            next(stream)
        except StopIteration as stop:
            result = stop.value
            break
    record = stored_record(cloud, decision_id)
    assert record is not None and not result.usage_estimated
    assert (result.prompt_tokens, result.completion_tokens) == (record.prompt_tokens, record.completion_tokens)
    plain = cloud.post(
        "/v1/chat/completions",
        json={
            "model": "strong-model",
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 4,
            "stream": True,
        },
    )
    assert '"usage"' not in plain.text  # only when asked for, as OpenAI does


def test_the_device_records_the_model_the_cloud_names_not_its_alias(cloud) -> None:
    """The device asks its cloud for `strong`; its record and answer name the model that answered."""
    from hybrid_router.backends.openai_compat import OpenAICompatBackend
    from hybrid_router.openai_schema import ChatCompletionRequest
    from hybrid_router.pipeline import Pipeline, Plan

    backend = OpenAICompatBackend(str(cloud.base_url) + "/v1", api_key=KEY, model="strong", api_key_header="x-api-key")
    backend.name = "strong"
    kept: list[DecisionRecord] = []

    class Keep:
        def begin(self, record: DecisionRecord) -> None: ...

        def write(self, record: DecisionRecord) -> bool:
            kept.append(record)
            return True

    pipeline = Pipeline(None, backend, "smollm2", "strong", Keep(), fallback=False)
    request = ChatCompletionRequest(model="strong", messages=[{"role": "user", "content": "hi"}], max_tokens=4)

    def plan() -> Plan:
        return Plan(new_ulid(), "strong", "strong", "forced", 0.0, 0.0, "r", "1", 0.0)

    plain = pipeline.complete(request, plan())
    streamed = pipeline.stream(request.model_copy(update={"stream": True}), plan())
    list(streamed)
    assert [r.model_used for r in kept] == ["strong-model", "strong-model"]
    assert plain.record.strong_model == "strong-model" and streamed.record is kept[1]
