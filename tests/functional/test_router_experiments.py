"""Shadow and A/B experiments on the device and in the cloud: records carry the arm and the other router's
decision, and the cloud's report (GET /v1/experiments/{id}, over synced records) equals the device's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_client.config import Settings
from edge_client.routers import CloudRouters, device_registry
from edge_client.routing_source import LocalRouteSource
from edge_client.service import EdgeService
from edge_client.sync import sync_decisions
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.experiments import arm_for, report
from hybrid_router.feedback import FeedbackRequest
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.registry import RouterRegistry, S3Blobs
from hybrid_router.routing import load_router
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread
from local_stack.stack import create_bucket

KEY = "key-experiments"
PROMPTS = [
    "hi",
    "What is 7 + 5?",
    "Prove that the square root of two is irrational.",
    "Name a colour.",
    "Write a Python function that merges two sorted lists.",
    "zzz qqq xylophone",
    "Translate 'cat' to French.",
    "Explain quantum entanglement to a ten year old.",
    "2+2",
    "Summarise the causes of the First World War.",
]


@pytest.fixture(scope="module")
def routers(tmp_path_factory, write_tiny_router) -> dict[str, Path]:
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    base = tmp_path_factory.mktemp("routers")
    return {
        "1": write_tiny_router(base / "v1", version="1").parent,
        "2": write_tiny_router(base / "v2", version="2", centre=4000.0).parent,
    }


@pytest.fixture
def cloud(dynamodb_endpoint, decision_table, routers, tmp_path, monkeypatch, fixed_backend) -> Iterator[dict]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dynamodb_endpoint)
    bucket = f"routers-{uuid.uuid4().hex[:12]}"
    create_bucket(dynamodb_endpoint, "us-east-1", bucket)
    registry = RouterRegistry(S3Blobs(bucket, region="us-east-1"))
    v1, v2 = registry.register(routers["1"]), registry.register(routers["2"])
    registry.activate(v1.ref)
    settings = ApiSettings(
        routers_bucket=bucket,
        router_refresh_s=0,
        router_cache_dir=str(tmp_path / "cache"),
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/dev"),
    )
    app = create_app(settings, strong_backend=fixed_backend("cloud-strong", "a strong answer"))
    server = ServerThread(app, name="cloud-api").start()
    try:
        yield {"url": server.url, "registry": registry, "v1": v1.ref, "v2": v2.ref}
    finally:
        server.stop()


def device(cloud: dict, tmp_path: Path, fixed_backend) -> EdgeService:
    settings = Settings(
        cloud_url=cloud["url"], api_key=KEY, data_dir=str(tmp_path / "device"), tenant_id="acme", device_id="dev"
    )
    registry = device_registry(settings)
    CloudRouters(settings).follow(registry)
    return EdgeService(
        settings,
        weak=fixed_backend("weak-model", "local answer"),
        strong=fixed_backend("strong-model", "a longer strong answer here"),
        route_source=LocalRouteSource(None, registry=registry),
        decision_log=DecisionLog(settings.decision_log_path),
    )


def ask(service: EdgeService, prompt: str):
    return service.complete(ChatCompletionRequest(model="router", messages=[{"role": "user", "content": prompt}]))


def test_shadow_records_keep_the_candidates_decision(cloud, tmp_path, fixed_backend) -> None:
    exp = cloud["registry"].start_experiment("shadow-1", cloud["v2"], "shadow")
    service = device(cloud, tmp_path, fixed_backend)
    candidate = load_router(device_registry(service.settings).local_folder(cloud["v2"]))
    strong_calls = service.strong.calls
    records = [ask(service, p).record for p in PROMPTS * 2]
    for prompt, record in zip(PROMPTS * 2, records, strict=False):
        own = candidate.decide(prompt)
        assert (record.experiment_id, record.arm, record.router_version) == ("shadow-1", "control", "1")
        assert (record.shadow_router_version, record.shadow_route) == ("2", own.route)
        assert record.shadow_score == pytest.approx(own.score, abs=1e-6)
    assert service.strong.calls - strong_calls == sum(r.route == "strong" for r in records)  # no extra generation
    device_report = report(exp, service.log.experiment_records("shadow-1"), service.log.ratings())
    assert device_report.requests == len(records) and device_report.arms["candidate"].estimated
    assert sum(r.shadow_route != r.route for r in records) > 0, "the two versions must disagree somewhere"


def test_ab_splits_by_request_and_the_cloud_report_equals_the_devices(cloud, tmp_path, fixed_backend) -> None:
    exp = cloud["registry"].start_experiment("ab-1", cloud["v2"], "ab", share=0.5)
    service = device(cloud, tmp_path, fixed_backend)
    records = [ask(service, p).record for p in PROMPTS * 4]
    for record in records:
        arm = arm_for(exp, record.decision_id)
        assert record.arm == arm and record.router_version == ("2" if arm == "candidate" else "1")
        assert record.shadow_router_version == ("1" if arm == "candidate" else "2")
    assert {r.arm for r in records} == {"control", "candidate"}
    for index, record in enumerate(records):
        if index % 3:
            service.log.rate(FeedbackRequest(decision_id=record.decision_id, rating=1 + index % 5, scale="stars"))
    sync = sync_decisions(service.settings)
    assert not sync.stuck
    response = httpx.get(f"{cloud['url']}/v1/experiments/ab-1", headers={"x-api-key": KEY}, timeout=30)
    assert response.status_code == 200, response.text
    device_report = report(exp, service.log.experiment_records("ab-1"), service.log.ratings())
    assert response.json() == json.loads(device_report.model_dump_json())
    assert response.json()["arms"]["candidate"]["ratings"]["count"] > 0
    assert httpx.get(f"{cloud['url']}/v1/experiments/nope", headers={"x-api-key": KEY}).status_code == 404


def test_the_cloud_routes_its_own_chat_by_the_experiment(cloud) -> None:
    exp = cloud["registry"].start_experiment("ab-cloud", cloud["v2"], "ab", share=0.5)
    seen = set()
    for prompt in PROMPTS:
        response = httpx.post(
            f"{cloud['url']}/v1/chat/completions",
            headers={"x-api-key": KEY},
            timeout=30,
            json={"model": "router", "messages": [{"role": "user", "content": prompt}]},
        )
        assert response.status_code == 200, response.text
        routing = response.json()["routing"]
        arm = arm_for(exp, routing["decision_id"])
        seen.add(arm)
        assert routing["router_version"] == ("2" if arm == "candidate" else "1")
    assert seen == {"control", "candidate"}
    body = httpx.get(f"{cloud['url']}/v1/experiments/ab-cloud", headers={"x-api-key": KEY}).json()
    assert body["requests"] == len(PROMPTS)
