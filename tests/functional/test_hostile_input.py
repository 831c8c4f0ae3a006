"""Hostile input gets a specific 4xx in bounded time, on the device server, the cloud API under uvicorn and the API
Lambda function: JSON nested 1,000 or 100,000 levels deep, a lone surrogate in any string field, a run of 1,000
combining accents, 10 MB bodies (garbage and valid JSON). Nothing reaches a model or a log, and no response holds
exception text. Real servers over real sockets; the models count their calls (test_edge_trust.CountingModel)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_api_lambda import body_of, invoke, lambda_env, load_handler  # noqa: F401
from test_api_support import assert_openai_error, load_event, table, tiny_router_dir  # noqa: F401
from test_edge_trust import CountingModel, edge, router_dir  # noqa: F401

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.api.limits import MAX_JSON_DEPTH, json_depth
from hybrid_router.openai_schema import MAX_COMBINING_RUN
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from local_stack.servers import ServerThread

KEY = "key-device-a"
TIME_LIMIT_S = 5.0
CHAT = {"model": "router", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
ULID = "01JDQ8Y3V0G6ZC9X2B7K5M4N1P"


def nested(depth: int) -> bytes:
    """A chat body whose extra field `x` is an array nested `depth` levels deep."""
    return b'{"messages":[{"role":"user","content":"hi"}],"x":' + b"[" * depth + b"]" * depth + b"}"


def chat(**fields: Any) -> bytes:
    return json.dumps({**CHAT, **fields}).encode()  # json.dumps writes a lone surrogate as its \ud800 escape


ACCENTS = "e" + "\u0301" * 1000
TEN_MB_JSON = b'{"messages":[{"role":"user","content":"' + b"a" * 10_000_000 + b'"}]}'
TEN_MB_GARBAGE = b"\x00garbage" * 1_250_000

# (id, path, body, status, code, param): the same on the device server and the cloud API (one error table);
# an invalid value is 422 naming the field.
CASES = [
    ("nested-1000", "/v1/chat/completions", nested(1000), 413, "body_too_deep", None),
    ("nested-100000", "/v1/chat/completions", nested(100_000), 413, "body_too_deep", None),
    (
        "nested-feedback",
        "/v1/feedback",
        b'{"decision_id":' + b"[" * 5000 + b"]" * 5000 + b"}",
        413,
        "body_too_deep",
        None,
    ),
    (
        "surrogate-content",
        "/v1/chat/completions",
        chat(messages=[{"role": "user", "content": "a \ud800 b"}]),
        422,
        "invalid_value",
        "messages.0.content",
    ),
    ("surrogate-stop", "/v1/chat/completions", chat(stop="\ud800"), 422, "invalid_value", "stop"),
    ("surrogate-stop-list", "/v1/chat/completions", chat(stop=["ok", "\udfff"]), 422, "invalid_value", "stop.1"),
    ("surrogate-model", "/v1/chat/completions", chat(model="\ud800"), 422, "invalid_value", "model"),
    ("surrogate-extra-field", "/v1/chat/completions", chat(user="\udc80"), 422, "invalid_value", "user"),
    ("surrogate-key", "/v1/chat/completions", chat(**{"\ud800": 1}), 422, "invalid_value", "\\ud800"),
    (
        "surrogate-part",
        "/v1/chat/completions",
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "\ud800"}]}]),
        422,
        "invalid_value",
        "messages.0.content.0.text",
    ),
    (
        "surrogate-feedback",
        "/v1/feedback",
        json.dumps({"decision_id": ULID, "rating": 5, "comment": "\ud800"}).encode(),
        422,
        "invalid_value",
        "comment",
    ),
    (
        "combining-1000",
        "/v1/chat/completions",
        chat(messages=[{"role": "user", "content": ACCENTS}]),
        422,
        "invalid_value",
        "messages.0.content",
    ),
    (
        "no-user-text",
        "/v1/chat/completions",
        chat(messages=[{"role": "tool"}]),
        422,
        "invalid_value",
        "messages",
    ),
    (
        "only-assistant-text",
        "/v1/chat/completions",
        chat(messages=[{"role": "assistant", "content": "hello"}]),
        422,
        "invalid_value",
        "messages",
    ),
    ("logprobs", "/v1/chat/completions", chat(logprobs=True), 422, "unsupported_value", "logprobs"),
    ("top-logprobs", "/v1/chat/completions", chat(top_logprobs=3), 422, "unsupported_value", "top_logprobs"),
    (
        "response-format-json",
        "/v1/chat/completions",
        chat(response_format={"type": "json_object"}),
        422,
        "unsupported_value",
        "response_format",
    ),
    ("10mb-json", "/v1/chat/completions", TEN_MB_JSON, 413, "body_too_large", None),
    ("10mb-garbage", "/v1/chat/completions", TEN_MB_GARBAGE, 413, "body_too_large", None),
]
CLOUD_ONLY = [
    (
        "surrogate-route-model",
        "/v1/route",
        json.dumps({"prompt": "hi", "model": "\udc00"}).encode(),
        422,
        "invalid_value",
        "model",
    ),
    ("surrogate-route-prompt", "/v1/route", json.dumps({"prompt": "\ud800"}).encode(), 422, "invalid_value", "prompt"),
    ("bool-threshold", "/v1/route", b'{"prompt": "hi", "threshold": false}', 422, "invalid_value", "threshold"),
    ("string-share", "/v1/route", b'{"prompt": "hi", "strong_share": "0.3"}', 422, "invalid_value", "strong_share"),
    ("nested-route", "/v1/route", b'{"prompt":' + b"{" * 2000 + b"}" * 2000 + b"}", 413, "body_too_deep", None),
    (
        "nested-decisions",
        "/v1/decisions",
        b'{"records":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        413,
        "body_too_deep",
        None,
    ),
]


def raw_post(url: str, path: str, body: bytes, headers: dict[str, str], chunked: bool = False) -> tuple[int, bytes]:
    """Sends the whole body over a plain socket (as curl and requests do) before reading the answer, which must
    then be a complete HTTP response, not a reset connection."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        head = [
            f"POST {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
            "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}",
        ]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        if chunked:
            for start in range(0, len(body), 1 << 16):
                part = body[start : start + (1 << 16)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        else:
            sock.sendall(body)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture
def cloud(tiny_router_dir, table, dynamodb_endpoint, dynamodb_client) -> Iterator[Any]:  # noqa: F811
    strong = CountingModel("strong-model")
    settings = ApiSettings(
        router_path=str(tiny_router_dir),
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/device-a"),
        strong_model_name="strong-model",
    )
    server = ServerThread(create_app(settings, strong_backend=strong), name="cloud-api").start()
    server.strong = strong  # type: ignore[attr-defined]
    server.store = DynamoDecisionStore(table, client=dynamodb_client)  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        server.stop()


def check(response: httpx.Response, status: int, code: str, param: str | None, elapsed: float) -> None:
    error = assert_openai_error(response, status, code)
    assert param is None or error["param"] == param, error
    assert elapsed < TIME_LIMIT_S, f"answered in {elapsed:.1f} s"
    assert "Error:" not in error["message"] and "Traceback" not in response.text


def timed_post(url: str, body: bytes, headers: dict[str, str]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(url, content=body, headers={"content-type": "application/json", **headers}, timeout=60)
    return response, time.monotonic() - started


@pytest.mark.parametrize("name, path, body, status, code, param", CASES, ids=[c[0] for c in CASES])
def test_the_device_server_refuses_hostile_input(edge, name, path, body, status, code, param) -> None:
    response, elapsed = timed_post(edge.url + path, body, {})
    check(response, status, code, param, elapsed)
    assert edge.untouched()


@pytest.mark.parametrize(
    "name, path, body, status, code, param", CASES + CLOUD_ONLY, ids=[c[0] for c in CASES + CLOUD_ONLY]
)
def test_the_cloud_api_refuses_hostile_input(cloud, name, path, body, status, code, param) -> None:
    response, elapsed = timed_post(cloud.url + path, body, {"x-api-key": KEY})
    check(response, status, code, param, elapsed)
    assert cloud.strong.calls == 0 and cloud.store.records_for_device("acme", "device-a") == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("body", [TEN_MB_JSON, TEN_MB_GARBAGE], ids=["valid-json", "garbage"])
def test_a_10_mb_body_sent_whole_gets_a_413_not_a_reset(edge, cloud, body, chunked) -> None:
    for url, headers in ((edge.url, {}), (cloud.url, {"x-api-key": KEY})):
        status, answer = raw_post(
            url, "/v1/chat/completions", body, {"content-type": "application/json", **headers}, chunked=chunked
        )
        error = json.loads(answer if not chunked or answer.startswith(b"{") else answer.split(b"\r\n")[1])["error"]
        assert (status, error["code"]) == (413, "body_too_large") and "bytes" in error["message"]


@pytest.mark.parametrize(
    "name, body, status, code",
    [
        ("nested", b'{"prompt":"hi","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 413, "body_too_deep"),
        ("surrogate-model", json.dumps({"prompt": "hi", "model": "\ud800"}).encode(), 422, "invalid_value"),
        ("7mb", json.dumps({"prompt": "a" * 7_000_000}).encode(), 413, "body_too_large"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None,
)
def test_the_api_function_refuses_hostile_input(lambda_env, name, body, status, code) -> None:  # noqa: F811
    """The Lambda path: Mangum hands the event body to the same app, whose limits run before parsing."""
    event = load_event("route_post.json")
    event["body"] = body.decode()
    started = time.monotonic()
    response, _ = invoke(load_handler("api"), event)
    assert time.monotonic() - started < TIME_LIMIT_S
    assert response["statusCode"] == status and body_of(response)["error"]["code"] == code


def test_the_depth_scan_ignores_brackets_in_strings_and_is_linear() -> None:
    assert json_depth(b'{"a": "[[[[{{{{", "b": [1, {"c": "]]]\\"[["}]}') == 3
    assert json_depth(b'"just a string"') == 0 and json_depth(b"[]") == 1
    legal = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "[" * 100}]}]}).encode()
    assert json_depth(legal) == 5 < MAX_JSON_DEPTH
    started = time.monotonic()
    assert json_depth(b"[" * 3_000_000 + b"]" * 3_000_000) == 3_000_000
    assert json_depth(b'{"p": "' + b'x\\"' * 2_000_000 + b'"}') == 1
    assert time.monotonic() - started < 2.0


def test_a_legal_run_of_combining_marks_is_served(edge) -> None:
    """Vietnamese stacks two marks, Zalgo-ish text a dozen: up to MAX_COMBINING_RUN in a row is text like any other."""
    text = "Vie\u0323\u0302t " + "a" + "\u0301" * MAX_COMBINING_RUN
    response, _ = timed_post(edge.url + "/v1/chat/completions", chat(messages=[{"role": "user", "content": text}]), {})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "ok"


@pytest.mark.parametrize("experiment_id", ["<script>", "a" * 3000, "ab-1%00", ".hidden"])
def test_a_hostile_experiment_id_is_422_before_any_registry_call(cloud, experiment_id: str) -> None:
    response = httpx.get(f"{cloud.url}/v1/experiments/{experiment_id}", headers={"x-api-key": KEY}, timeout=10)
    assert_openai_error(response, 422, "invalid_value")
    assert "experiment id must be" in response.json()["error"]["message"]


@pytest.mark.parametrize("days", ["0", "-1", "367", "1e22", "true"])
def test_dashboard_days_outside_1_to_366_is_422_on_both_servers(cloud, edge, days: str) -> None:
    assert httpx.get(f"{cloud.url}/dashboard", params={"days": days}, headers={"x-api-key": KEY}).status_code == 422
    assert httpx.get(f"{edge.url}/dashboard", params={"days": days}).status_code == 422


def test_a_wrong_method_is_405_with_allow_on_both_servers(cloud, edge) -> None:
    for response in (
        httpx.delete(f"{cloud.url}/v1/chat/completions", headers={"x-api-key": KEY}),
        httpx.delete(f"{edge.url}/v1/chat/completions"),
    ):
        assert response.status_code == 405 and "POST" in response.headers.get("allow", ""), response.headers


def test_a_query_parameter_given_twice_is_422_on_both_servers(cloud, edge) -> None:
    twice = httpx.get(f"{cloud.url}/v1/usage?since=2026-01-01&since=2026-02-01", headers={"x-api-key": KEY})
    assert_openai_error(twice, 422, "invalid_value")
    assert httpx.get(f"{edge.url}/dashboard?days=3&days=4").status_code == 422


@pytest.mark.parametrize("authorization", ["Basic abc", "Bearer", "Bearer someone-elses-key", "garbage"])
def test_a_malformed_or_mismatched_authorization_header_is_401_even_beside_a_good_key(cloud, authorization) -> None:
    response = httpx.get(f"{cloud.url}/v1/usage", headers={"x-api-key": KEY, "authorization": authorization})
    assert_openai_error(response, 401, "invalid_api_key")
