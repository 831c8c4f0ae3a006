"""The Lambda handlers (functions/*/app.py) invoked with real API Gateway REST (v1) proxy events (tests/events)
and a Lambda context, against moto's DynamoDB server and the SageMaker runtime stand-in."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from test_api_support import (
    REPO,
    STRONG_ENDPOINT,
    load_event,
    sagemaker_stand_in,  # noqa: F401
    table,  # noqa: F401
    tiny_router_dir,  # noqa: F401
)

from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.ulid import is_ulid

KEY_ID = load_event("route_post.json")["requestContext"]["identity"]["apiKeyId"]


@dataclass
class LambdaContext:
    function_name: str = "hybrid-router-ApiFunction-Xy12"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = ""
    log_group_name: str = "/aws/lambda/hybrid-router-ApiFunction-Xy12"
    log_stream_name: str = "2024/11/28/[$LATEST]0123456789abcdef"

    def __post_init__(self) -> None:
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def load_handler(function: str) -> Callable[[dict, Any], dict]:
    """Imports functions/<function>/app.py afresh (its module-level app reads the environment, as in Lambda)."""
    # Powertools keeps one logging handler per service name, bound to the stdout of its first test: a fresh
    # name per load lets each test capture its own log lines (the fixture's monkeypatch restores the variable).
    os.environ["POWERTOOLS_SERVICE_NAME"] = f"hybrid-router-{function}-{uuid.uuid4().hex[:6]}"
    path = REPO / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"lambda_{function}_{uuid.uuid4().hex[:6]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


@pytest.fixture
def lambda_env(monkeypatch, tiny_router_dir, table, dynamodb_endpoint) -> dict[str, str]:
    env = {
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "DECISIONS_TABLE_NAME": table,
        "TENANT_ID": "acme",
        "UPLOAD_WINDOW_DAYS": "3660",  # tests/events/decisions_post.json was recorded in 2024
        "HYBRID_ROUTER_KEY_IDENTITIES": "",
        "HYBRID_ROUTER_ROUTER": str(tiny_router_dir),
        "STRONG_MODEL_NAME": "strong-model",
        "POWERTOOLS_SERVICE_NAME": "hybrid-router-test",
        "POWERTOOLS_METRICS_NAMESPACE": "HybridRouter",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }
    for name in ("STRONG_ENDPOINT_NAME", "WEAK_ENDPOINT_NAME", "SAGEMAKER_ENDPOINT_URL", "HYBRID_ROUTER_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def invoke(handler, event: dict, capsys=None) -> tuple[dict, list[dict]]:
    """(response, JSON lines the function printed: Powertools logs and EMF metric blobs)."""
    response = handler(event, LambdaContext())
    lines: list[dict] = []
    if capsys is not None:
        for line in capsys.readouterr().out.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return response, lines


def body_of(response: dict) -> Any:
    raw = response["body"]
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return json.loads(raw)


def metric_names(lines: list[dict]) -> set[str]:
    names = set()
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            assert directive["Namespace"] == "HybridRouter"
            names.update(m["Name"] for m in directive["Metrics"])
    return names


def metric_sums(lines: list[dict]) -> dict[str, float]:
    """Each metric's total over the EMF blobs (a blob holds one value or a list of values per metric)."""
    sums: dict[str, float] = {}
    for line in lines:
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            for name in (metric["Name"] for metric in directive["Metrics"]):
                values = line[name] if isinstance(line[name], list) else [line[name]]
                sums[name] = sums.get(name, 0) + sum(values)
    return sums


def test_health(lambda_env) -> None:
    for function in ("api", "ingest"):
        response, _ = invoke(load_handler(function), load_event("health_get.json"))
        assert response["statusCode"] == 200 and body_of(response)["status"] == "ok"


def test_route_through_the_api_function(lambda_env, capsys) -> None:
    event = load_event("route_post.json")
    response, lines = invoke(load_handler("api"), event, capsys)
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert is_ulid(body["decision_id"]) and body["router_kind"] == "tiny"
    assert body["route"] == ("strong" if body["score"] >= body["threshold"] else "weak")
    logs = [line for line in lines if "correlation_id" in line]
    assert logs and {line["correlation_id"] for line in logs} == {event["requestContext"]["requestId"]}
    assert {"RouteOnlyRequests", "RouterLatency", "RouteOnlyStrongShare"} <= metric_names(lines)


def test_broken_router_file_is_a_clear_503_not_a_crash(lambda_env, monkeypatch, tmp_path) -> None:
    (tmp_path / "router.onnx").write_bytes(b"this is not an onnx graph")
    monkeypatch.setenv("HYBRID_ROUTER_ROUTER", str(tmp_path))
    handler = load_handler("api")  # the init phase survives
    response, _ = invoke(handler, load_event("route_post.json"))
    assert response["statusCode"] == 503
    assert body_of(response)["error"]["code"] == "router_unavailable"
    assert invoke(handler, load_event("health_get.json"))[0]["statusCode"] == 200


def test_models(lambda_env) -> None:
    response, _ = invoke(load_handler("api"), load_event("models_get.json"))
    assert response["statusCode"] == 200
    assert "router" in [m["id"] for m in body_of(response)["data"]]


def test_decisions_usage_feedback_through_the_ingest_function(lambda_env, dynamodb_client, capsys) -> None:
    handler = load_handler("ingest")
    response, lines = invoke(handler, load_event("decisions_post.json"), capsys)
    assert response["statusCode"] == 200, response["body"]
    assert body_of(response) == {"accepted": 2, "duplicates": 0, "failed": [], "charged": []}
    assert {"RecordsAccepted", "DeviceRequests", "DeviceSavingsUSD"} <= metric_names(lines)
    again, _ = invoke(handler, load_event("decisions_post.json"))
    assert body_of(again)["duplicates"] == 2
    # Identity comes from the request context: tenant = TENANT_ID, device = the API key id, whatever the body says.
    store = DynamoDecisionStore(lambda_env["DECISIONS_TABLE_NAME"], client=dynamodb_client)
    assert len(store.records_for_device("acme", KEY_ID)) == 2
    assert store.records_for_device("someone-else", "not-me") == []

    usage, _ = invoke(handler, load_event("usage_get.json"))
    summary = body_of(usage)
    assert usage["statusCode"] == 200 and summary["device_id"] == KEY_ID and summary["totals"]["requests"] == 2

    feedback, _ = invoke(handler, load_event("feedback_post.json"))
    assert feedback["statusCode"] == 200 and body_of(feedback)["rating"] == 4


def test_device_metrics_count_only_newly_stored_records(lambda_env, capsys) -> None:
    handler = load_handler("ingest")
    event = load_event("decisions_post.json")
    body = json.loads(event["body"])
    first = dict(event, body=json.dumps({"records": body["records"][:1]}))
    assert body_of(invoke(handler, first)[0])["accepted"] == 1
    capsys.readouterr()
    response, lines = invoke(handler, event, capsys)  # the stored record again, and one new record
    assert body_of(response) == {"accepted": 1, "duplicates": 1, "failed": [], "charged": []}
    sums = metric_sums(lines)
    assert (sums["RecordsAccepted"], sums["RecordsDuplicate"], sums["DeviceRequests"]) == (1, 1, 1)
    response, lines = invoke(handler, event, capsys)  # a whole batch re-sent
    assert body_of(response) == {"accepted": 0, "duplicates": 2, "failed": [], "charged": []}
    sums = metric_sums(lines)
    assert sums["RecordsDuplicate"] == 2 and not [name for name in sums if name.startswith("Device")]


def test_stage_variable_and_key_map_name_the_tenant(lambda_env, monkeypatch, dynamodb_client) -> None:
    event = load_event("decisions_post.json")
    event["stageVariables"] = {"tenantId": "stage-tenant"}
    response, _ = invoke(load_handler("ingest"), event)
    assert body_of(response)["accepted"] == 2
    store = DynamoDecisionStore(lambda_env["DECISIONS_TABLE_NAME"], client=dynamodb_client)
    assert len(store.records_for_device("stage-tenant", KEY_ID)) == 2

    monkeypatch.setenv("HYBRID_ROUTER_KEY_IDENTITIES", f"{KEY_ID}=mapped/laptop-7")
    response, _ = invoke(load_handler("ingest"), load_event("decisions_post.json"))
    assert body_of(response)["accepted"] == 2
    assert len(store.records_for_device("mapped", "laptop-7")) == 2


def test_no_api_key_identity_is_401(lambda_env) -> None:
    event = load_event("usage_get.json")
    event["requestContext"]["identity"]["apiKeyId"] = None
    response, _ = invoke(load_handler("ingest"), event)
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    "function, event_name",
    [
        ("ingest", "decisions_post.json"),
        ("ingest", "usage_get.json"),
        ("ingest", "feedback_post.json"),
        ("api", "route_post.json"),
    ],
)
@pytest.mark.parametrize("where, value", [("tenant", "acme#evil"), ("device", "key#1")])
def test_a_hash_in_the_callers_tenant_or_device_id_is_a_clear_403(
    lambda_env, dynamodb_client, function, event_name, where, value
) -> None:
    """'#' joins tenant and device in the store's keys: such an identity is refused before anything is stored."""
    event = load_event(event_name)
    if where == "tenant":
        event["stageVariables"] = {"tenantId": value}
    else:
        event["requestContext"]["identity"]["apiKeyId"] = value
    response, _ = invoke(load_handler(function), event)
    assert response["statusCode"] == 403, response["body"]
    error = body_of(response)["error"]
    assert error["code"] == "invalid_identity" and f"{where} id {value!r}" in error["message"]
    assert "no '#'" in error["message"]
    assert dynamodb_client.scan(TableName=lambda_env["DECISIONS_TABLE_NAME"])["Items"] == []


def test_a_hash_in_a_records_own_device_id_is_harmless(lambda_env, dynamodb_client) -> None:
    """Uploaded records are stored under the caller's identity, so a device id in the body never reaches a key."""
    event = load_event("decisions_post.json")
    body = json.loads(event["body"])
    for record in body["records"]:
        record.update(tenant_id="acme#evil", device_id="laptop#7")
    event["body"] = json.dumps(body)
    response, _ = invoke(load_handler("ingest"), event)
    assert body_of(response) == {"accepted": 2, "duplicates": 0, "failed": [], "charged": []}
    store = DynamoDecisionStore(lambda_env["DECISIONS_TABLE_NAME"], client=dynamodb_client)
    assert {(r.tenant_id, r.device_id) for r in store.records_for_device("acme", KEY_ID)} == {("acme", KEY_ID)}


def test_body_identity_headers_are_not_trusted_in_lambda(lambda_env, monkeypatch) -> None:
    """A local-style x-api-key mapping must not work inside Lambda: only the gateway's context counts."""
    monkeypatch.setenv("HYBRID_ROUTER_API_KEYS", "local-key=evil/device")
    event = load_event("usage_get.json")
    event["headers"]["x-api-key"] = event["multiValueHeaders"]["x-api-key"] = "local-key"
    event["requestContext"]["identity"]["apiKeyId"] = ""
    response, _ = invoke(load_handler("ingest"), event)
    assert response["statusCode"] == 401


def test_each_function_serves_only_its_routes(lambda_env) -> None:
    response, _ = invoke(load_handler("api"), load_event("decisions_post.json"))
    assert response["statusCode"] == 404
    response, _ = invoke(load_handler("ingest"), load_event("route_post.json"))
    assert response["statusCode"] == 404


@pytest.mark.parametrize(
    "body, status",
    [("{not json", 400), (json.dumps({"prompt": 12}), 422), (json.dumps({"prompt": "x", "model": "nope"}), 404)],
)
def test_bad_requests_in_lambda(lambda_env, body, status) -> None:
    event = load_event("route_post.json")
    event["body"] = body
    response, _ = invoke(load_handler("api"), event)
    assert response["statusCode"] == status
    error = body_of(response)["error"]
    assert error["message"] and "Traceback" not in response["body"]


def test_base64_body(lambda_env) -> None:
    event = load_event("route_post.json")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    response, _ = invoke(load_handler("api"), event)
    assert response["statusCode"] == 200


# ---------------------------------------------------------------- chat through Lambda (SageMaker stand-in)


@pytest.fixture
def chat_env(lambda_env, monkeypatch, sagemaker_stand_in) -> dict[str, str]:
    monkeypatch.setenv("STRONG_ENDPOINT_NAME", STRONG_ENDPOINT)
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_URL", sagemaker_stand_in.url)
    monkeypatch.setenv("DEFAULT_MAX_TOKENS", "8")
    return lambda_env


def test_chat_through_the_api_function(chat_env, dynamodb_client, capsys) -> None:
    response, lines = invoke(load_handler("api"), load_event("chat_post.json"), capsys)
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["choices"][0]["message"]["content"]
    store = DynamoDecisionStore(chat_env["DECISIONS_TABLE_NAME"], client=dynamodb_client)
    [record] = store.records_for_device("acme", KEY_ID)
    assert record.decision_id == body["routing"]["decision_id"]
    assert {"Requests", "StrongShare", "CostUSD", "SavingsUSD", "RouterLatency"} <= metric_names(lines)


def test_streaming_chat_is_buffered_sse(chat_env) -> None:
    response, _ = invoke(load_handler("api"), load_event("chat_stream_post.json"))
    assert response["statusCode"] == 200
    assert response["headers"]["content-type"].startswith("text/event-stream")
    raw = base64.b64decode(response["body"]).decode() if response.get("isBase64Encoded") else response["body"]
    events = [block for block in raw.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(block[6:]) for block in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks).strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")  # the stream's own reason


def test_chat_function_streams_as_the_lambda_web_adapter_runs_it(chat_env, monkeypatch, dynamodb_client, capsys):
    """functions/chat/app.py as the adapter serves it (run.sh: uvicorn, app:app): the caller from the request context
    the adapter passes as a header, the answer streamed, the record written, its metrics flushed as EMF lines."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("HYBRID_ROUTER_IDENTITY_SOURCE", "request_context_header")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", f"hybrid-router-chat-{uuid.uuid4().hex[:6]}")
    path = REPO / "functions" / "chat" / "app.py"
    spec = importlib.util.spec_from_file_location(f"lambda_chat_{uuid.uuid4().hex[:6]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    event = load_event("chat_stream_post.json")
    context = {"x-amzn-request-context": json.dumps(event["requestContext"]), "content-type": "application/json"}
    with TestClient(module.app) as client:
        assert client.post("/v1/chat/completions", content=event["body"], headers={"x-api-key": "k"}).status_code == 401
        capsys.readouterr()
        response = client.post("/v1/chat/completions", content=event["body"], headers=context)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.rstrip().endswith("data: [DONE]")
    store = DynamoDecisionStore(chat_env["DECISIONS_TABLE_NAME"], client=dynamodb_client)
    [record] = store.records_for_device("acme", KEY_ID)
    assert record.status == "ok" and record.completion_tokens > 0
    lines = []
    for line in capsys.readouterr().out.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    assert {"Requests", "StrongShare", "CostUSD"} <= metric_names(lines)


# ---------------------------------------------------------------- the template's permissions, checked live


def _template_operations() -> dict[str, set[tuple[str, str]]]:
    """tests/unit/test_template.py checks template.yaml grants exactly these operations' IAM actions."""
    spec = importlib.util.spec_from_file_location("template_checks", REPO / "tests" / "unit" / "test_template.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OPERATIONS


@pytest.fixture
def aws_calls(monkeypatch) -> list[tuple[str, str]]:
    """Every AWS API call the code makes, as (service, operation) (observed, then passed on unchanged)."""
    from botocore.client import BaseClient

    calls: list[tuple[str, str]] = []
    original = BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        calls.append((self.meta.service_model.service_name, operation_name))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(BaseClient, "_make_api_call", recording)
    return calls


@pytest.fixture
def routers_bucket(lambda_env, monkeypatch, tmp_path, tiny_router_dir, dynamodb_endpoint) -> str:
    """A routers bucket (moto's S3) with the tiny router registered and active, in the functions' environment."""
    from hybrid_router.registry import RouterRegistry, S3Blobs
    from local_stack.stack import create_bucket

    name = f"routers-{uuid.uuid4().hex[:12]}"
    create_bucket(dynamodb_endpoint, "us-east-1", name)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dynamodb_endpoint)
    registry = RouterRegistry(S3Blobs(name, region="us-east-1"))
    registry.activate(registry.register(tiny_router_dir).ref)
    for key, value in {"ROUTERS_BUCKET_NAME": name, "ROUTER_CACHE_DIR": str(tmp_path / "routers")}.items():
        monkeypatch.setenv(key, value)
    return name


def _get_event(path: str) -> dict:
    """An API Gateway GET event for `path`, made from the recorded usage event."""
    event = load_event("usage_get.json")
    event.update(resource=path, path=path, queryStringParameters=None, multiValueQueryStringParameters=None)
    event["requestContext"].update(resourcePath=path, path=event["requestContext"]["path"].replace("/v1/usage", path))
    return event


def test_ingest_calls_stay_within_the_template_permissions(lambda_env, routers_bucket, aws_calls) -> None:
    handler = load_handler("ingest")
    for name in ("decisions_post.json", "usage_get.json", "feedback_post.json", "health_get.json"):
        response, _ = invoke(handler, load_event(name))
        assert response["statusCode"] == 200, (name, response["body"])
    response, _ = invoke(handler, _get_event("/v1/routers"))
    assert response["statusCode"] == 200 and body_of(response)["deployment"]["active"]["version"] == "0"
    assert set(aws_calls) == _template_operations()["IngestFunction"]


def test_api_calls_stay_within_the_template_permissions(chat_env, routers_bucket, aws_calls) -> None:
    handler = load_handler("api")
    for name in ("route_post.json", "models_get.json"):  # the routes API Gateway sends it
        response, _ = invoke(handler, load_event(name))
        assert response["statusCode"] == 200, (name, response["body"])
    assert set(aws_calls) == _template_operations()["ApiFunction"]


def test_chat_calls_stay_within_the_template_permissions(chat_env, routers_bucket, aws_calls, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    monkeypatch.setenv("HYBRID_ROUTER_IDENTITY_SOURCE", "request_context_header")
    monkeypatch.setenv("ANSWER_CACHE", "true")  # the answer cache reads (GetItem) and stores (PutItem) too
    spec = importlib.util.spec_from_file_location(f"lambda_chat_{uuid.uuid4().hex[:6]}", REPO / "functions/chat/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as client:
        for name in ("chat_post.json", "chat_stream_post.json"):
            event = load_event(name)
            headers = {
                "x-amzn-request-context": json.dumps(event["requestContext"]),
                "content-type": "application/json",
            }
            response = client.post("/v1/chat/completions", content=event["body"], headers=headers)
            assert response.status_code == 200, (name, response.text)
    assert set(aws_calls) == _template_operations()["ChatFunction"]


@pytest.mark.parametrize("damage", ["no_request_context", "bad_base64"])
def test_an_unreadable_event_is_a_clear_400_not_a_crash(lambda_env, damage) -> None:
    event = load_event("route_post.json")
    if damage == "no_request_context":
        del event["requestContext"]
    else:
        event["isBase64Encoded"], event["body"] = True, "%%% not base64 %%%"
    response, _ = invoke(load_handler("api"), event)
    assert response["statusCode"] == 400
    assert body_of(response)["error"]["code"] == "unreadable_event"
