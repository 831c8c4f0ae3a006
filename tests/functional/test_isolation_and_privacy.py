"""A caller reaches only its own records, whatever its request bodies claim; and with default settings a prompt is
kept nowhere: not in the device's SQLite files (WAL included), not in DynamoDB, not in any log line or metric.

Real parts: the cloud API under uvicorn with moto's DynamoDB server, the device server, `sync`, the API Lambda
function; the models answer "ok" at once (test_edge_trust.CountingModel)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_api_lambda import invoke, lambda_env, load_handler  # noqa: F401
from test_api_support import assert_openai_error, load_event, table, tiny_router_dir  # noqa: F401
from test_edge_server import ALWAYS_STRONG, ALWAYS_WEAK
from test_edge_trust import CountingModel, edge_server, router_dir  # noqa: F401

from edge_client.sync import sync_decisions
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.decision import DecisionRecord
from hybrid_router.ulid import new_ulid
from local_stack.servers import ServerThread

KEYS = {"a": "key-tenant-acme-device-a", "b": "key-tenant-acme-device-b", "other": "key-tenant-globex-device-a"}
OWNERS = {"a": ("acme", "device-a"), "b": ("acme", "device-b"), "other": ("globex", "device-a")}
PROTECTED = [
    ("GET", "/v1/models"),
    ("GET", "/v1/models/router"),
    ("POST", "/v1/route"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/decisions"),
    ("GET", "/v1/usage"),
    ("POST", "/v1/feedback"),
]


@pytest.fixture
def cloud(tiny_router_dir, table, dynamodb_endpoint, dynamodb_client) -> Any:  # noqa: F811
    keys = ",".join(f"{KEYS[who]}={tenant}/{device}" for who, (tenant, device) in OWNERS.items())
    settings = ApiSettings(
        router_path=str(tiny_router_dir),
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(keys),
        strong_model_name="strong-model",
    )
    server = ServerThread(create_app(settings, strong_backend=CountingModel("strong-model")), name="cloud-api").start()
    server.table, server.client = table, dynamodb_client  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def call(cloud, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, cloud.url + path, headers={"x-api-key": KEYS[who]}, timeout=30, **kwargs)


def record(**fields: Any) -> dict[str, Any]:
    values = dict(
        decision_id=new_ulid(),
        router_id="mf",
        router_version="1",
        score=0.2,
        threshold=0.5,
        route="weak",
        weak_model="smollm2",
        strong_model="strong-model",
        model_used="smollm2",
        prompt_tokens=5,
        completion_tokens=3,
        router_latency_ms=0.5,
        generation_latency_ms=40.0,
        cost_usd=1e-6,
        strong_cost_usd=1e-4,
    )
    return DecisionRecord(**{**values, **fields}).model_dump(mode="json")


def items(cloud) -> list[dict[str, Any]]:
    found, start = [], {}
    while True:
        page = cloud.client.scan(TableName=cloud.table, **start)
        found += page["Items"]
        if "LastEvaluatedKey" not in page:
            return found
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def requests_of(cloud, who: str) -> int:
    return call(cloud, who, "GET", "/v1/usage").json()["totals"]["requests"]


# ---------------------------------------------------------------- isolation


@pytest.mark.parametrize(
    "headers, status, code", [({}, 401, "missing_api_key"), ({"x-api-key": "not-a-key"}, 403, "invalid_api_key")]
)
def test_every_protected_route_needs_a_valid_key(cloud, headers, status, code) -> None:
    for method, path in PROTECTED:
        response = httpx.request(method, cloud.url + path, headers=headers, json={"prompt": "hi"}, timeout=30)
        assert_openai_error(response, status, code)
    assert items(cloud) == []


@pytest.mark.parametrize(
    "forged",
    [
        {"device_id": "device-b"},
        {"tenant_id": "globex"},
        {"tenant_id": "globex", "device_id": "device-a"},
        {"tenant_id": "acme#device-b"},
    ],
    ids=["other-device", "other-tenant", "other-tenant-same-device", "key-injection"],
)
def test_a_batch_claiming_another_owner_is_stored_as_the_callers(cloud, forged) -> None:
    batch = [record(**forged) for _ in range(3)]
    result = call(cloud, "a", "POST", "/v1/decisions", json={"records": batch}).json()
    assert (result["accepted"], result["duplicates"], result["failed"]) == (3, 0, [])
    assert requests_of(cloud, "a") == 3 and requests_of(cloud, "b") == requests_of(cloud, "other") == 0
    stored = {(item["tenant_id"]["S"], item["device_id"]["S"]) for item in items(cloud)}
    assert stored == {OWNERS["a"]}


def test_another_devices_decision_cannot_be_overwritten(cloud) -> None:
    """The same decision id sent by another device or tenant, claiming device b, is that caller's own record."""
    theirs = record()
    assert call(cloud, "b", "POST", "/v1/decisions", json={"records": [theirs]}).json()["accepted"] == 1
    for who in ("a", "other"):
        forged = dict(theirs, cost_usd=9.0, strong_cost_usd=9.0, tenant_id="acme", device_id="device-b")
        assert call(cloud, who, "POST", "/v1/decisions", json={"records": [forged]}).json()["accepted"] == 1
    owners = sorted(
        (item["tenant_id"]["S"], item["device_id"]["S"], float(item["cost_usd"]["N"])) for item in items(cloud)
    )
    assert owners == [("acme", "device-a", 9.0), ("acme", "device-b", 1e-6), ("globex", "device-a", 9.0)]
    assert call(cloud, "b", "GET", "/v1/usage").json()["totals"]["cost_usd"] == pytest.approx(1e-6)


def test_a_rating_of_someone_elses_decision_is_not_found(cloud) -> None:
    theirs = record()
    call(cloud, "b", "POST", "/v1/decisions", json={"records": [theirs]}).raise_for_status()
    for who in ("a", "other"):
        response = call(cloud, who, "POST", "/v1/feedback", json={"decision_id": theirs["decision_id"], "rating": 5})
        assert_openai_error(response, 404, "decision_not_found")
    assert not any("rating" in item for item in items(cloud))


# ---------------------------------------------------------------- privacy


def contains(path: Path, marker: bytes) -> bool:
    return marker in path.read_bytes()


def test_a_prompt_is_kept_nowhere_with_default_settings(
    cloud,
    tmp_path,
    router_dir,
    caplog,  # noqa: F811
    lambda_env,
    capsys,
) -> None:  # noqa: F811
    marker = f"MARKER-{uuid.uuid4().hex}"
    caplog.set_level(logging.DEBUG)
    prompt = [{"role": "user", "content": f"Please repeat {marker} twice."}]
    with edge_server(tmp_path / "device", router_dir) as edge:
        for model in (ALWAYS_WEAK, ALWAYS_STRONG):
            for stream in (False, True):
                response = httpx.post(
                    edge.url + "/v1/chat/completions",
                    timeout=30,
                    json={"model": model, "messages": prompt, "stream": stream},
                )
                assert response.status_code == 200
        # the repeated strong prompt is answered from the answer cache, whose file the scan below covers too
        assert edge.service.weak.calls == 2 and edge.service.strong.calls == 1
        report = sync_decisions(edge.service.log, cloud.url, api_key=KEYS["a"])
        assert (report.accepted, report.failed, report.remaining) == (4, [], 0)
    for stream in (False, True):
        chat = call(cloud, "a", "POST", "/v1/chat/completions", json={"messages": prompt, "stream": stream})
        assert chat.status_code == 200
    assert call(cloud, "a", "POST", "/v1/route", json={"prompt": marker}).status_code == 200
    event = load_event("route_post.json")
    event["body"] = json.dumps({"prompt": marker})
    response, _ = invoke(load_handler("api"), event)
    assert response["statusCode"] == 200

    files = sorted(path for path in (tmp_path / "device").rglob("*") if path.is_file())
    assert {"decisions.sqlite3", "answer_cache.sqlite3"} <= {path.name for path in files}
    assert [path.name for path in files if contains(path, marker.encode())] == []
    stored = items(cloud)
    assert len(stored) >= 6 and marker not in json.dumps(stored)
    assert marker not in "\n".join(record.getMessage() for record in caplog.records)
    function_output = capsys.readouterr().out  # the function's Powertools log lines and EMF metrics
    assert marker not in function_output
    with capsys.disabled():
        print(
            f"\nmarker scan, 0 hits in: {len(files)} device files ({', '.join(p.name for p in files)}), "
            f"{len(stored)} DynamoDB items, {len(caplog.records)} log records, "
            f"{len(function_output.splitlines())} lines of API function output"
        )


def test_with_store_prompts_the_prompt_is_kept_where_the_user_asked(tmp_path, router_dir) -> None:  # noqa: F811
    """The scan above can find a prompt: with store_prompts on, the device log holds it."""
    marker = f"MARKER-{uuid.uuid4().hex}"
    with edge_server(tmp_path, router_dir, store_prompts=True) as edge:
        response = httpx.post(
            edge.url + "/v1/chat/completions",
            timeout=30,
            json={"model": ALWAYS_WEAK, "messages": [{"role": "user", "content": marker}]},
        )
        assert response.status_code == 200
        edge.service.log.records()  # the row is committed
    assert any(contains(path, marker.encode()) for path in tmp_path.rglob("*") if path.is_file())
