"""The cloud API under a real uvicorn, called with httpx (and the openai client) over real sockets."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_api_support import (
    STRONG_ENDPOINT,
    ThrottlingDynamoDB,
    assert_openai_error,
    faults,  # noqa: F401
    load_event,  # noqa: F401
    sagemaker_stand_in,  # noqa: F401
    table,  # noqa: F401
    throttling_dynamodb,  # noqa: F401
    tiny_router_dir,  # noqa: F401
)

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.routing import load_router
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.ulid import is_ulid, new_ulid
from local_stack.servers import ServerThread

KEY, OTHER_KEY = "key-device-a", "key-device-b"
KEYS = f"{KEY}=acme/device-a,{OTHER_KEY}=acme/device-b"


def settings_for(router_dir, table_name: str | None, dynamodb_url: str | None, **extra: Any) -> ApiSettings:
    return ApiSettings(
        router_path=str(router_dir),
        table_name=table_name,
        dynamodb_endpoint_url=dynamodb_url,
        region="us-east-1",
        api_keys=parse_key_map(KEYS),
        **{"upload_window_days": 3660, **extra},  # tests/events/decisions_post.json was recorded in 2024
    )


def serve(settings: ApiSettings) -> ServerThread:
    return ServerThread(create_app(settings), name="cloud-api").start()


@pytest.fixture
def api(tiny_router_dir, table, dynamodb_endpoint) -> Iterator[httpx.Client]:
    server = serve(settings_for(tiny_router_dir, table, dynamodb_endpoint))
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=60) as client:
            client.table = table  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def device_records() -> list[dict[str, Any]]:
    return json.loads(load_event("decisions_post.json")["body"])["records"]


# ---------------------------------------------------------------- health, identity


def test_health_needs_no_key(api) -> None:
    response = httpx.get(f"{api.base_url}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize(
    "headers, status, code",
    [
        ({}, 401, "missing_api_key"),
        ({"x-api-key": "not-a-key"}, 403, "invalid_api_key"),
        ({"authorization": "Bearer not-a-key"}, 403, "invalid_api_key"),
    ],
)
def test_missing_or_invalid_key_is_refused(api, headers, status, code) -> None:
    for method, path in [
        ("GET", "/v1/models"),
        ("POST", "/v1/route"),
        ("GET", "/v1/usage"),
        ("POST", "/v1/decisions"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/feedback"),
    ]:
        response = httpx.request(method, f"{api.base_url}{path}", headers=headers, json={"prompt": "hi"})
        assert_openai_error(response, status, code)


def test_bearer_key_is_accepted(api) -> None:
    response = httpx.get(f"{api.base_url}/v1/models", headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


# ---------------------------------------------------------------- /v1/route, /v1/models


def test_route_returns_the_routers_decision(api, tiny_router_dir) -> None:
    router = load_router(tiny_router_dir)
    prompt = "Explain the proof of Fermat's last theorem in detail."
    body = api.post("/v1/route", json={"prompt": prompt}).json()
    expected = router.decide(prompt)
    assert body["score"] == pytest.approx(expected.score, abs=1e-6)
    assert body["threshold"] == pytest.approx(router.info.default_threshold)
    assert body["route"] == ("strong" if body["score"] >= body["threshold"] else "weak")
    assert body["router_id"] == router.info.router_id and body["router_kind"] == router.info.kind
    assert is_ulid(body["decision_id"]) and body["latency_ms"] >= 0


def test_route_with_messages_threshold_share_and_named_router(api, tiny_router_dir) -> None:
    router = load_router(tiny_router_dir)
    messages = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "What is 2+2?"},
    ]
    by_messages = api.post("/v1/route", json={"messages": messages}).json()
    by_prompt = api.post("/v1/route", json={"prompt": "What is 2+2?"}).json()
    assert by_messages["score"] == pytest.approx(by_prompt["score"])
    shared = api.post("/v1/route", json={"prompt": "x", "strong_share": 0.3}).json()
    assert shared["threshold"] == pytest.approx(router.threshold_for_share(0.3))
    assert api.post("/v1/route", json={"prompt": "x", "model": "router-tiny-0.0"}).json()["route"] == "strong"
    assert api.post("/v1/route", json={"prompt": "x", "model": "router-tiny-1.0"}).json()["route"] == "weak"
    assert api.post("/v1/route", json={"prompt": "x", "threshold": 0.0}).json()["route"] == "strong"


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"prompt": "x", "model": "gpt-17"}, 404, "model_not_found"),
        ({"prompt": "x", "model": "router-nosuchkind"}, 404, "model_not_found"),
        ({"prompt": "x", "model": "router-cascade"}, 404, "model_not_found"),  # cascade mode is the device's
        ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, 422, "invalid_value"),
        ({}, 422, "invalid_value"),
        ({"prompt": "x", "threshold": 1.5}, 422, "invalid_value"),
        ({"prompt": "x", "threshold": 0.2, "strong_share": 0.3}, 422, "invalid_value"),
        ({"prompt": ["not", "a", "string"]}, 422, "invalid_value"),
        ({"prompt": "x", "unexpected": 1}, 422, "invalid_value"),
    ],
)
def test_route_bad_requests(api, body, status, code) -> None:
    assert_openai_error(api.post("/v1/route", json=body), status, code)


def test_models_lists_the_router(api, tiny_router_dir) -> None:
    ids = [m["id"] for m in api.get("/v1/models").json()["data"]]
    assert "router" in ids and f"router-tiny-{load_router(tiny_router_dir).info.default_threshold:g}" in ids


# ---------------------------------------------------------------- malformed input


def test_malformed_json_is_400(api) -> None:
    response = api.post("/v1/route", content=b'{"prompt": "unterminated', headers={"content-type": "application/json"})
    assert_openai_error(response, 400, "invalid_json")
    assert_openai_error(api.post("/v1/decisions", content=b""), 400)
    not_utf8 = api.post(
        "/v1/route", content=b'{"prompt": "\xff\xfe caf\xe9"}', headers={"content-type": "application/json"}
    )
    assert "UTF-8" in assert_openai_error(not_utf8, 400, "invalid_json")["message"]


def test_wrong_types_are_422_with_the_field_named(api) -> None:
    error = assert_openai_error(api.post("/v1/chat/completions", json={"model": "router", "messages": "hello"}), 422)
    assert error["param"] == "messages"
    error = assert_openai_error(
        api.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}], "max_tokens": -3}), 422
    )
    assert error["param"] == "max_tokens"


def test_body_over_6_mb_is_413(api) -> None:
    big = json.dumps({"prompt": "x" * (6 * 1024 * 1024)}).encode()
    assert_openai_error(
        api.post("/v1/route", content=big, headers={"content-type": "application/json"}), 413, "body_too_large"
    )

    def chunks() -> Iterator[bytes]:  # no content-length: counted while reading
        for _ in range(7):
            yield b" " * (1024 * 1024)

    assert_openai_error(api.post("/v1/route", content=chunks(), headers={"content-type": "application/json"}), 413)


def test_unknown_route_and_method(api) -> None:
    assert_openai_error(api.get("/v1/nothing-here"), 404)
    assert_openai_error(api.get("/v1/route"), 405)


# ---------------------------------------------------------------- /v1/decisions, /v1/usage, /v1/feedback


def test_upload_is_idempotent_and_stamped_with_the_callers_identity(api, dynamodb_client) -> None:
    records = device_records()
    first = api.post("/v1/decisions", json={"records": records}).json()
    assert first == {"accepted": 2, "duplicates": 0, "failed": [], "charged": []}
    again = api.post("/v1/decisions", json={"records": records}).json()
    assert again == {"accepted": 0, "duplicates": 2, "failed": [], "charged": []}
    store = DynamoDecisionStore(api.table, client=dynamodb_client)
    stored = store.records_for_device("acme", "device-a")
    assert sorted(r.decision_id for r in stored) == sorted(r["decision_id"] for r in records)
    assert store.records_for_device("someone-else", "not-me") == []


def test_a_bad_record_fails_alone(api) -> None:
    good, bad = device_records()
    bad = dict(bad, decision_id=new_ulid(), score=3.5)
    broken_id = dict(good, decision_id="not-a-ulid")
    result = api.post("/v1/decisions", json={"records": [good, bad, broken_id]}).json()
    assert result["accepted"] == 1 and result["duplicates"] == 0
    assert {f["decision_id"] for f in result["failed"]} == {bad["decision_id"], "not-a-ulid"}
    assert all(f["error"] for f in result["failed"])


def test_records_that_cannot_be_stored_fail_alone_not_the_batch(api) -> None:
    """A null, a string, an unhashable id or an unusable created_at is one failed record, never a 500 or a 422
    for the whole batch (a device would otherwise re-send that batch forever)."""
    good = dict(device_records()[0], decision_id=new_ulid())
    odd = [
        None,
        "a record",
        dict(good, decision_id={"not": "a string"}),
        dict(good, decision_id=(garbage_time := new_ulid()), created_at="yesterday"),
        dict(good, decision_id=(far_future := new_ulid()), created_at="9999-12-31T23:59:59Z"),
    ]
    response = api.post("/v1/decisions", json={"records": [good, *odd]})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 1 and result["duplicates"] == 0 and len(result["failed"]) == len(odd)
    failed = {f["decision_id"]: f["error"] for f in result["failed"]}
    assert "created_at" in failed[garbage_time] and "created_at" in failed[far_future]
    assert all(error for error in failed.values())


def test_batch_limits(api) -> None:
    record = device_records()[0]
    too_many = [dict(record, decision_id=new_ulid()) for _ in range(501)]
    assert_openai_error(api.post("/v1/decisions", json={"records": too_many}), 413, "batch_too_large")
    assert_openai_error(api.post("/v1/decisions", json={"records": "all of them"}), 422)
    assert_openai_error(api.post("/v1/decisions", json=[record]), 422)


def test_usage_is_the_callers_own_and_windowed(api) -> None:
    api.post("/v1/decisions", json={"records": device_records()}).raise_for_status()
    mine = api.get("/v1/usage", params={"since": "2024-11-01"}).json()
    assert (mine["tenant_id"], mine["device_id"]) == ("acme", "device-a")
    assert mine["totals"]["requests"] == 2 and mine["totals"]["strong"] == 1
    assert mine["totals"]["saving_usd"] == pytest.approx(0.00065 - 0.0000021)
    assert set(mine["by_route"]) == {"weak", "strong"}
    assert api.get("/v1/usage", params={"since": "2024-11-28"}).json()["totals"]["requests"] == 0
    window = api.get("/v1/usage", params={"since": "2024-11-27T09:16:00Z", "until": "2024-11-28"}).json()
    assert window["totals"]["requests"] == 1
    other = httpx.get(f"{api.base_url}/v1/usage", headers={"x-api-key": OTHER_KEY}).json()
    assert other["device_id"] == "device-b" and other["totals"]["requests"] == 0


def test_usage_window_in_any_iso_spelling_means_the_same_instant(api) -> None:
    """Offsets, week dates and the basic format are valid ISO 8601: they must select what the UTC spelling
    selects, not silently compare as strings against created_at."""
    api.post("/v1/decisions", json={"records": device_records()}).raise_for_status()
    requests = lambda **params: api.get("/v1/usage", params=params).json()["totals"]["requests"]  # noqa: E731
    assert requests(since="2024-11-27T09:16:00Z") == 1
    assert requests(since="2024-11-27T14:46:00+05:30") == 1  # 09:16Z
    assert requests(since="2024-11-27T06:16:00-03:00", until="2024-11-27T09:00:00-12:00") == 1  # 09:16Z..21:00Z
    assert requests(until="2024-11-27T09:00:00-12:00") == 2
    assert requests(since="20241127") == 2 and requests(since="2024-W48-3") == 2  # both 2024-11-27
    assert requests(since="2024-W48-4") == 0


@pytest.mark.parametrize(
    "params", [{"since": "yesterday"}, {"since": "2024-13-01"}, {"since": "2024-11-02", "until": "2024-11-01"}]
)
def test_usage_bad_dates_are_422(api, params) -> None:
    assert_openai_error(api.get("/v1/usage", params=params), 422)


def test_feedback_on_own_decision_only(api) -> None:
    records = device_records()
    api.post("/v1/decisions", json={"records": records}).raise_for_status()
    decision_id = records[0]["decision_id"]
    stored = api.post("/v1/feedback", json={"decision_id": decision_id, "rating": -1, "comment": "wrong"}).json()
    assert stored["decision_id"] == decision_id and stored["rating"] == -1 and stored["comment"] == "wrong"
    other = httpx.post(
        f"{api.base_url}/v1/feedback", headers={"x-api-key": OTHER_KEY}, json={"decision_id": decision_id, "rating": 5}
    )
    assert_openai_error(other, 404, "decision_not_found")
    assert_openai_error(api.post("/v1/feedback", json={"decision_id": decision_id, "rating": 7}), 422)
    assert_openai_error(api.post("/v1/feedback", json={"decision_id": decision_id, "rating": True}), 422)
    assert_openai_error(api.post("/v1/feedback", json={"decision_id": "short", "rating": 1}), 422)


def test_dynamodb_throttling_is_retried_then_503(tiny_router_dir, throttling_dynamodb) -> None:
    server = serve(settings_for(tiny_router_dir, "decisions", throttling_dynamodb))
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            response = client.post("/v1/decisions", json={"records": device_records()[:1]})
            assert_openai_error(response, 503, "store_throttled")
            assert response.headers["retry-after"]
            assert ThrottlingDynamoDB.calls > 1, "the store did not retry"
            assert_openai_error(client.get("/v1/usage"), 503, "store_throttled")
    finally:
        server.stop()


def test_missing_table_setting_is_a_clear_503(tiny_router_dir) -> None:
    server = serve(settings_for(tiny_router_dir, None, None))
    try:
        response = httpx.get(f"{server.url}/v1/usage", headers={"x-api-key": KEY})
        assert_openai_error(response, 503, "store_unavailable")
    finally:
        server.stop()


# ---------------------------------------------------------------- /v1/chat/completions (SageMaker stand-in)


@pytest.fixture
def chat_api(tiny_router_dir, table, dynamodb_endpoint, dynamodb_client, sagemaker_stand_in) -> Iterator[Any]:
    settings = settings_for(
        tiny_router_dir,
        table,
        dynamodb_endpoint,
        strong_endpoint_name=STRONG_ENDPOINT,
        sagemaker_endpoint_url=sagemaker_stand_in.url,
        sagemaker_timeout_s=20,
        strong_model_name="strong-model",
        default_max_tokens=12,
    )
    server = serve(settings)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            client.store = DynamoDecisionStore(table, client=dynamodb_client)  # type: ignore[attr-defined]
            client.server = server  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def chat(client: httpx.Client, model: str = "router-tiny-0.0", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "Say hello in French."}], "max_tokens": 8}
    return client.post("/v1/chat/completions", json={**body, **extra})


def test_chat_strong_route_answers_and_records(chat_api) -> None:
    body = chat(chat_api).json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"]
    assert body["model"] == "strong-model" and body["usage"]["completion_tokens"] > 0
    routing = body["routing"]
    assert routing["route"] == "strong" and routing["reason"] == "routed" and routing["threshold"] == 0.0
    [record] = chat_api.store.records_for_device("acme", "device-a")
    assert record.decision_id == routing["decision_id"] and record.route == "strong"
    assert record.completion_tokens == body["usage"]["completion_tokens"]
    assert record.cost_usd > 0 and record.cost_usd == record.strong_cost_usd and record.status == "ok"
    assert record.prompt is None


def test_chat_weak_route_without_weak_endpoint_says_so(chat_api) -> None:
    routing = chat(chat_api, model="router-tiny-1.0").json()["routing"]
    assert routing["decided_route"] == "weak" and routing["route"] == "strong"
    assert routing["reason"] == "fallback:no_weak_endpoint"
    [record] = chat_api.store.records_for_device("acme", "device-a")
    assert record.reason == "fallback:no_weak_endpoint" and record.model_used == "strong-model"


def test_chat_strong_model_name_forces_strong(chat_api) -> None:
    routing = chat(chat_api, model="strong-model").json()["routing"]
    assert routing["reason"] == "forced" and routing["route"] == "strong"
    assert_openai_error(chat(chat_api, model="gpt-4o"), 404, "model_not_found")


def test_chat_with_callers_decision_id_records_under_that_id(chat_api) -> None:
    decision_id = new_ulid()
    response = chat_api.post(
        "/v1/chat/completions",
        headers={"x-decision-id": decision_id},
        json={"model": "strong-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    assert response.json()["routing"]["decision_id"] == decision_id
    [record] = chat_api.store.records_for_device("acme", "device-a")
    assert record.decision_id == decision_id and record.cost_usd > 0
    bad = chat_api.post(
        "/v1/chat/completions",
        headers={"x-decision-id": "nope"},
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert_openai_error(bad, 422)


@pytest.mark.parametrize(
    "extra, status, code",
    [
        ({"n": 2}, 422, "unsupported_value"),
        ({"messages": [{"role": "user", "content": "a" * 1_000_001}]}, 413, "prompt_too_large"),
        ({"messages": [{"role": "user", "content": "a \ud800 b"}]}, 422, "invalid_value"),
        ({"tools": [{"type": "function", "function": {"name": "get_weather"}}]}, 422, "unsupported_value"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}
                ]
            },
            422,
            "unsupported_value",
        ),
        ({"stream": "yes"}, 422, None),
    ],
)
def test_chat_input_no_model_can_take_is_refused_before_routing(chat_api, extra, status, code) -> None:
    """n > 1 (one answer would come back), a prompt over MAX_PROMPT_CHARS, a lone surrogate: refused as the
    device's server refuses them, not sent to the endpoint (which would fail, or answer once) and logged."""
    body = {"model": "router-tiny-0.0", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8, **extra}
    response = chat_api.post(
        "/v1/chat/completions",
        content=json.dumps(body),  # json.dumps escapes a surrogate
        headers={"content-type": "application/json"},
    )
    error = assert_openai_error(response, status, code)
    assert error["param"] in ("n", "messages", "messages.0.content", "tools", "stream")
    assert chat_api.store.records_for_device("acme", "device-a") == []


def test_chat_stream_is_valid_sse(chat_api) -> None:
    with chat_api.stream(
        "POST",
        "/v1/chat/completions",
        json={
            "model": "router-tiny-0.0",
            "stream": True,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Count to three."}],
        },
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text.strip()
    [record] = chat_api.store.records_for_device("acme", "device-a")
    assert record.decision_id == chunks[0]["routing"]["decision_id"] and record.completion_tokens > 0
    # the stream's own finish reason: cut at max_tokens says length, not a fixed "stop"
    assert chunks[-1]["choices"][0]["finish_reason"] == ("length" if record.completion_tokens == 8 else "stop")


def test_openai_client_works_against_the_api(chat_api) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(
        base_url=f"{chat_api.server.url}/v1", api_key=KEY, max_retries=0, default_headers={"x-api-key": KEY}
    )
    answer = client.chat.completions.create(model="router", messages=[{"role": "user", "content": "Hi"}], max_tokens=6)
    assert answer.choices[0].message.content
    pieces = list(
        client.chat.completions.create(
            model="router", stream=True, max_tokens=6, messages=[{"role": "user", "content": "Hi"}]
        )
    )
    assert "".join(p.choices[0].delta.content or "" for p in pieces if p.choices)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert client.models.retrieve("strong-model").id == "strong-model"
    assert client.models.retrieve("router-tiny-0.25").id == "router-tiny-0.25"  # not listed, but served
    with pytest.raises(openai.NotFoundError, match="does not exist here"):
        client.models.retrieve("no-such-model")


def test_sagemaker_timeout_is_504(
    tiny_router_dir, table, dynamodb_endpoint, dynamodb_client, sagemaker_stand_in, faults
) -> None:
    settings = settings_for(
        tiny_router_dir,
        table,
        dynamodb_endpoint,
        strong_endpoint_name=STRONG_ENDPOINT,
        sagemaker_endpoint_url=sagemaker_stand_in.url,
        sagemaker_timeout_s=1,
    )
    server = serve(settings)
    try:
        faults(mode="latency", latency_s=3)
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=60) as client:
            assert_openai_error(chat(client), 504, "strong_timeout")
        [record] = DynamoDecisionStore(table, client=dynamodb_client).records_for_device("acme", "device-a")
        assert record.status == "error" and record.cost_usd == 0
    finally:
        server.stop()


def test_sagemaker_5xx_is_502(chat_api, faults) -> None:
    faults(mode="model_error", status=500)
    assert_openai_error(chat(chat_api), 502, "strong_error")
    faults(mode="service_error", status=500)
    assert_openai_error(chat(chat_api), 502)


LONG_PROMPT = " ".join(["word"] * 1100)  # one token a word: over the stand-in strong model's 1024-token context


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_over_the_strong_models_context_is_the_callers_400(chat_api, stream) -> None:
    """The endpoint refused the input (TGI's 422, a ModelError to boto3): a 400 naming its reason, not a 502 the
    caller would retry; the record says error, with that reason, once."""
    response = chat(chat_api, messages=[{"role": "user", "content": LONG_PROMPT}], stream=stream)
    error = assert_openai_error(response, 400, "strong_rejected_input")
    assert error["type"] == "invalid_request_error"
    assert (
        "rejected the input (422): Input validation error: `inputs` tokens + `max_new_tokens` must be <= 1024"
        in error["message"]
    )
    [record] = chat_api.store.records_for_device("acme", "device-a")
    assert (record.status, record.route, record.cost_usd, record.completion_tokens) == ("error", "strong", 0, 0)
    assert "rejected the input (422): Input validation error" in record.error


@pytest.mark.parametrize(
    "status, expected, code",
    [(422, 400, "strong_rejected_input"), (413, 400, "strong_rejected_input"), (429, 502, "strong_error")],
)
def test_endpoint_4xx_is_the_callers_error_only_when_it_refuses_the_input(
    chat_api, faults, status, expected, code
) -> None:
    faults(mode="model_error", status=status)
    for stream in (False, True):
        assert_openai_error(chat(chat_api, stream=stream), expected, code)


def test_broken_stream(chat_api, faults) -> None:
    faults(mode="cut", after_parts=0, operation="stream")
    assert_openai_error(chat(chat_api, stream=True), 502)
    faults(mode="stream_error", after_parts=1, operation="stream")
    response = chat(chat_api, stream=True)
    assert response.status_code == 200  # headers were sent before the endpoint broke off
    lines = [line for line in response.text.splitlines() if line]
    assert lines[-1] == "data: [DONE]"
    errors = [json.loads(line[6:]) for line in lines[:-1] if '"error"' in line]
    assert errors and errors[0]["error"]["code"].startswith("strong_")
    records = chat_api.store.records_for_device("acme", "device-a")
    assert [r.status for r in records] == ["error", "error"]
    cut_before, broke_after = records
    assert cut_before.completion_tokens == 0 and cut_before.cost_usd == 0.0  # nothing delivered, nothing paid
    # the pieces delivered before the endpoint broke off are paid for, and save nothing against always-strong
    assert broke_after.completion_tokens >= 1 and broke_after.cost_usd > 0.0 and broke_after.saving_usd == 0.0


def test_no_strong_endpoint_configured_is_503(tiny_router_dir, table, dynamodb_endpoint) -> None:
    server = serve(settings_for(tiny_router_dir, table, dynamodb_endpoint))
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=30) as client:
            assert_openai_error(chat(client), 503, "strong_unavailable")
    finally:
        server.stop()


def test_record_the_store_refused_comes_back_to_be_resent(
    tiny_router_dir, throttling_dynamodb, sagemaker_stand_in, api
) -> None:
    settings = settings_for(
        tiny_router_dir,
        "decisions",
        throttling_dynamodb,
        strong_endpoint_name=STRONG_ENDPOINT,
        sagemaker_endpoint_url=sagemaker_stand_in.url,
        sagemaker_timeout_s=20,
        strong_model_name="strong-model",
        default_max_tokens=8,
    )
    server = serve(settings)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            response = chat(client)
    finally:
        server.stop()
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"]
    unstored = response.json()["routing"]["unstored_record"]
    assert unstored["decision_id"] == response.json()["routing"]["decision_id"]
    resent = api.post("/v1/decisions", json={"records": [unstored]})
    assert resent.status_code == 200 and resent.json()["accepted"] == 1
    assert api.get("/v1/usage").json()["totals"]["requests"] == 1


def test_stop_sequences_reach_the_sagemaker_model(chat_api) -> None:
    request = {
        "model": "strong-model",
        "max_tokens": 24,
        "messages": [{"role": "user", "content": "Describe the sea in two sentences."}],
    }
    free = chat_api.post("/v1/chat/completions", json=request).json()["choices"][0]["message"]["content"]
    words = free.split()
    assert len(words) > 6, free
    stop = words[4]  # greedy decoding: the same answer again, cut before its fifth word
    stopped = chat_api.post("/v1/chat/completions", json={**request, "stop": [stop]}).json()
    text = stopped["choices"][0]["message"]["content"]
    assert stop not in text and free.startswith(text.rstrip()) and len(text) < len(free)
    streamed = chat_api.post("/v1/chat/completions", json={**request, "stop": stop, "stream": True}).text
    pieces = [json.loads(line[6:]) for line in streamed.splitlines() if line.startswith("data: {")]
    assert stop not in "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p.get("choices"))


def test_four_stop_sequences_fit_tgi_and_a_fifth_is_refused_before_routing(chat_api) -> None:
    # TGI refuses more than 4 stop sequences (422); the body builder's end-of-turn marker must not push four
    # caller stops over that limit, and OpenAI's own limit (4) is checked before anything is routed or charged.
    four = chat(chat_api, stop=["zq1", "zq2", "zq3", "zq4"])
    assert four.status_code == 200, four.text
    assert four.json()["choices"][0]["message"]["content"]
    five = chat(chat_api, stop=["zq1", "zq2", "zq3", "zq4", "zq5"])
    assert five.status_code in (400, 422) and five.json()["error"]["type"] == "invalid_request_error"
    assert "at most 4 stop sequences" in five.json()["error"]["message"]
    assert len(chat_api.store.records_for_device("acme", "device-a")) == 1  # only the answered request


def test_a_client_that_leaves_mid_stream_is_recorded_and_frees_the_endpoint(chat_api) -> None:
    # Without closing the response body on disconnect, the suspended stream kept the endpoint's answer open and
    # never wrote its record; the garbage collector is off so that nothing closes it by chance.
    collecting = gc.isenabled()
    gc.disable()
    try:
        body = {
            "model": "strong-model",
            "stream": True,
            "max_tokens": 400,
            "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
        }
        with httpx.Client(base_url=chat_api.server.url, headers={"x-api-key": KEY}, timeout=60) as client:
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                assert response.status_code == 200
                lines = response.iter_lines()
                read = [next(lines) for _ in range(6)]  # the role chunk and the first pieces, then hang up
                decision_id = response.headers["x-decision-id"]
        assert any('"content"' in line for line in read)
        records, deadline = [], time.monotonic() + 5
        while not records and time.monotonic() < deadline:
            records = chat_api.store.records_for_device("acme", "device-a")
            time.sleep(0.1)
        [record] = records
        assert (record.decision_id, record.status, record.error) == (decision_id, "error", "client_disconnected")
        # the tokens delivered before the client left are paid for, and save nothing against always-strong
        assert record.completion_tokens >= 1 and record.cost_usd > 0.0 and record.saving_usd == 0.0
        started = time.perf_counter()
        assert chat(chat_api, model="strong-model", max_tokens=4).status_code == 200
        assert time.perf_counter() - started < 3  # the abandoned 400-token answer alone takes about 7 s
    finally:
        if collecting:
            gc.enable()
