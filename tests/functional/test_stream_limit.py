"""STREAM_LIMIT_S: a streamed answer that runs longer than the function may is ended by the app and recorded with
what was sent, so Lambda's timeout (900 s in the chat function) never stops the function before its record."""

from __future__ import annotations

import json
import time

from fastapi.testclient import TestClient
from test_api_support import tiny_router_dir  # noqa: F401 (fixture)

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.ulid import new_ulid


def test_a_stream_past_the_limit_ends_recorded(
    fixed_backend, tiny_router_dir, decision_table, dynamodb_endpoint, dynamodb_client
) -> None:
    base = fixed_backend("strong-model", " ".join(f"word{i}" for i in range(40)))

    class SlowBackend:  # the fixed answer, one word every 50 ms
        name = base.name

        def stream(self, *args, **kwargs):
            pieces = base.stream(*args, **kwargs)
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as stop:
                    return stop.value
                time.sleep(0.05)
                yield piece

        def __getattr__(self, name):
            return getattr(base, name)

    settings = ApiSettings(
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        router_path=str(tiny_router_dir),
        strong_model_name="strong-model",
        api_keys=parse_key_map("k=acme/dev"),
        stream_limit_s=0.5,
    )
    client = TestClient(create_app(settings, groups=("inference",), strong_backend=SlowBackend()))
    decision_id = new_ulid()
    response = client.post(
        "/v1/chat/completions",
        json={"model": "strong-model", "messages": [{"role": "user", "content": "hi"}], "stream": True},
        headers={"x-api-key": "k", "x-decision-id": decision_id},
    )
    assert response.status_code == 200
    events = [block[6:] for block in response.text.split("\n\n") if block.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["code"] == "stream_limit"
    pieces = [
        c["choices"][0]["delta"]["content"]
        for c in map(json.loads, events[:-2])
        if c.get("choices") and c["choices"][0]["delta"].get("content")
    ]
    assert 5 <= len(pieces) < 40, len(pieces)
    [record] = DynamoDecisionStore(decision_table, client=dynamodb_client).records_for_device("acme", "dev")
    assert record.decision_id == decision_id
    assert (record.status, record.error) == ("error", "stream_limit")
    assert record.completion_tokens == len(pieces)
    assert ApiSettings.from_env({"STREAM_LIMIT_S": "800"}).stream_limit_s == 800
    assert ApiSettings.from_env({}).stream_limit_s is None
