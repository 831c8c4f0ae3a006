"""The cloud's answer cache: DynamoDB items per tenant with a TTL, against moto's DynamoDB server over HTTP, and
through the cloud API (uvicorn, the SageMaker stand-in as the strong model) when ANSWER_CACHE is on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_api_http import KEY, chat, serve, settings_for
from test_api_support import (  # noqa: F401  (fixtures)
    STRONG_ENDPOINT,
    sagemaker_stand_in,
    table,
    tiny_router_dir,
)

from hybrid_router.api import ApiSettings
from hybrid_router.cache import CachedAnswer, cache_key
from hybrid_router.cache.dynamodb import DynamoAnswerCache, item_key
from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client
from hybrid_router.ulid import new_ulid

KEY_A = cache_key([{"role": "user", "content": "hello"}], "strong-model", 8, 0.0, None, None)


class Clock:
    now = 2_000_000_000.0

    def __call__(self) -> float:
        return self.now


def answer() -> CachedAnswer:
    return CachedAnswer(text="Bonjour !", prompt_tokens=9, completion_tokens=3, decision_id=new_ulid(), cost_usd=0.01)


def test_a_tenants_entries_round_trip_expire_and_stay_its_own(dynamodb_client, table) -> None:
    clock = Clock()
    acme = DynamoAnswerCache(table, dynamodb_client, "acme", ttl_s=60.0, clock=clock)
    other = DynamoAnswerCache(table, dynamodb_client, "globex", ttl_s=60.0, clock=clock)
    stored = answer()
    assert acme.get(KEY_A) is None and acme.put(KEY_A, stored)
    hit = acme.get(KEY_A)
    assert hit is not None and hit.text == "Bonjour !" and hit.decision_id == stored.decision_id
    assert other.get(KEY_A) is None  # one tenant never reads another's answers
    item = dynamodb_client.get_item(TableName=table, Key=item_key("acme", KEY_A))["Item"]
    assert int(item["expires_at"]["N"]) > clock.now + 59 and item["entity"]["S"] == "answer_cache"
    clock.now += 61
    assert acme.get(KEY_A) is None  # past the TTL, before DynamoDB deletes it


@pytest.mark.parametrize(
    "entry",
    [{"S": "{broken"}, {"S": '{"text": 1}'}, {"N": "5"}, None],
)
def test_a_corrupt_item_is_a_miss(dynamodb_client, table, entry) -> None:
    cache = DynamoAnswerCache(table, dynamodb_client, "acme")
    cache.put(KEY_A, answer())
    item = dynamodb_client.get_item(TableName=table, Key=item_key("acme", KEY_A))["Item"]
    if entry is None:
        del item["entry"]
    else:
        item["entry"] = entry
    dynamodb_client.put_item(TableName=table, Item=item)
    assert cache.get(KEY_A) is None


def test_an_unreachable_table_is_a_miss_and_nothing_stored(dynamodb_client) -> None:
    with_no_table = DynamoAnswerCache("no-such-table", dynamodb_client, "acme")
    assert with_no_table.get(KEY_A) is None and with_no_table.put(KEY_A, answer()) is False
    closed = make_client(endpoint_url="http://127.0.0.1:9", region="us-east-1", max_attempts=1)
    gone = DynamoAnswerCache("t", closed, "acme")
    assert gone.get(KEY_A) is None and gone.put(KEY_A, answer()) is False


def test_the_setting_reads_from_the_environment() -> None:
    assert ApiSettings.from_env({}).answer_cache is False
    on = ApiSettings.from_env({"ANSWER_CACHE": "true", "ANSWER_CACHE_TTL_S": "3600"})
    assert on.answer_cache is True and on.answer_cache_ttl_s == 3600.0


def cloud(tiny_router_dir, table, dynamodb_endpoint, sagemaker_stand_in, **extra: Any):
    settings = settings_for(
        tiny_router_dir,
        table,
        dynamodb_endpoint,
        strong_endpoint_name=STRONG_ENDPOINT,
        sagemaker_endpoint_url=sagemaker_stand_in.url,
        sagemaker_timeout_s=20,
        strong_model_name="strong-model",
        default_max_tokens=12,
        **extra,
    )
    return serve(settings)


@pytest.fixture
def cached_api(tiny_router_dir, table, dynamodb_endpoint, dynamodb_client, sagemaker_stand_in) -> Iterator[Any]:
    server = cloud(tiny_router_dir, table, dynamodb_endpoint, sagemaker_stand_in, answer_cache=True)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            client.store = DynamoDecisionStore(table, client=dynamodb_client)  # type: ignore[attr-defined]
            yield client
    finally:
        server.stop()


def test_a_repeat_is_served_from_the_tenants_cloud_cache(cached_api) -> None:
    first = chat(cached_api).json()
    second = chat(cached_api).json()
    fresh = cached_api.post(
        "/v1/chat/completions",
        json={
            "model": "router-tiny-0.0",
            "messages": [{"role": "user", "content": "Say hello in French."}],
            "max_tokens": 8,
        },
        headers={"cache-control": "no-cache"},
    ).json()
    assert second["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    assert first["routing"]["reason"] == "routed" and fresh["routing"]["reason"] == "routed"
    assert second["routing"]["reason"] == "cache:exact"
    assert second["routing"]["cached_from"] == first["routing"]["decision_id"]
    records = {r.decision_id: r for r in cached_api.store.records_for_device("acme", "device-a")}
    paid, hit = records[first["routing"]["decision_id"]], records[second["routing"]["decision_id"]]
    assert hit.reason == "cache:exact" and hit.cost_usd == 0 and hit.cached_from == paid.decision_id
    assert hit.strong_cost_usd == pytest.approx(paid.cost_usd) and paid.cost_usd > 0
    assert records[fresh["routing"]["decision_id"]].cost_usd > 0


def test_the_cloud_cache_is_off_by_default(tiny_router_dir, table, dynamodb_endpoint, sagemaker_stand_in) -> None:
    server = cloud(tiny_router_dir, table, dynamodb_endpoint, sagemaker_stand_in)
    try:
        with httpx.Client(base_url=server.url, headers={"x-api-key": KEY}, timeout=120) as client:
            reasons = [chat(client).json()["routing"]["reason"] for _ in range(2)]
    finally:
        server.stop()
    assert reasons == ["routed", "routed"]


def test_a_streamed_repeat_streams_the_cached_answer(cached_api) -> None:
    first = chat(cached_api).json()

    def streamed() -> tuple[str, dict]:
        with cached_api.stream(
            "POST",
            "/v1/chat/completions",
            json={
                "model": "router-tiny-0.0",
                "messages": [{"role": "user", "content": "Say hello in French."}],
                "max_tokens": 8,
                "stream": True,
            },
        ) as response:
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        chunks = [json.loads(e) for e in events if e != "[DONE]"]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        return text, chunks[0]["routing"]

    text, routing = streamed()
    assert text == first["choices"][0]["message"]["content"]
    assert routing["reason"] == "cache:exact" and routing["cached_from"] == first["routing"]["decision_id"]
    records = {r.decision_id: r for r in cached_api.store.records_for_device("acme", "device-a")}
    hit = records[routing["decision_id"]]
    assert hit.reason == "cache:exact" and hit.cost_usd == 0 and hit.cached_from == first["routing"]["decision_id"]
