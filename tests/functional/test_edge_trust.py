"""The device server serves only what its user meant (issue 14), over a real socket with httpx.

Any web page could spend the user's money: a page's `fetch` to 127.0.0.1 with a text/plain body is a CORS simple
request, sent without a preflight, and a DNS-rebinding page reaches the server under its own host name. Each hostile
request must be refused before routing: no decision record, no model call. The models here count their calls.
"""

from __future__ import annotations

import json
import time
import tracemalloc
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from test_edge_server import PROMPT, ServerThread, client_for, make_service, openai, router_dir  # noqa: F401

from edge_client.config import ConfigError, Settings, describe, load_settings
from edge_client.server import MAX_BODY_BYTES, check_bind, create_app
from edge_client.service import EdgeService
from hybrid_router.api.errors import error_type
from hybrid_router.backends.base import Completion, StreamResult

TOKEN = "s3cret-token-for-tests"
ATTACK = json.dumps({"model": "strong", "messages": PROMPT, "max_tokens": 8}).encode()
BROWSER = {"host": "evil.example:8080", "origin": "http://evil.example", "content-type": "text/plain;charset=UTF-8"}


class CountingModel:
    """Answers "ok" and counts its calls."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def complete(self, messages: list[dict], max_tokens: int = 256, **options: Any) -> Completion:
        self.calls += 1
        return Completion(text="ok", model=self.name, prompt_tokens=5, completion_tokens=1)

    def stream(self, messages: list[dict], max_tokens: int = 256, **options: Any) -> Generator[str, None, StreamResult]:
        self.calls += 1
        yield "ok"
        return StreamResult(prompt_tokens=5, completion_tokens=1)


class Edge:
    def __init__(self, server: ServerThread, service: EdgeService) -> None:
        self.server, self.service, self.url = server, service, server.url

    def post(self, body: bytes = ATTACK, path: str = "/v1/chat/completions", **headers: str) -> httpx.Response:
        return httpx.post(self.url + path, content=body, headers=headers, timeout=30)

    def untouched(self) -> bool:
        return len(self.service.log.records()) == 0 and self.service.weak.calls == self.service.strong.calls == 0


@contextmanager
def edge_server(tmp_path, router_dir, **settings: Any) -> Iterator[Edge]:  # noqa: F811
    service = make_service(tmp_path, router_dir, CountingModel("weak-model"), CountingModel("strong"), **settings)
    with ServerThread(create_app(service)) as server:
        yield Edge(server, service)


@pytest.fixture
def edge(tmp_path, router_dir) -> Iterator[Edge]:  # noqa: F811
    with edge_server(tmp_path, router_dir) as server:
        yield server


@pytest.fixture
def guarded(tmp_path, router_dir) -> Iterator[Edge]:  # noqa: F811
    with edge_server(tmp_path, router_dir, server_token=TOKEN) as server:
        yield server


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["type"]) == (code, error_type(status)) and error["message"]


def test_the_cross_site_attack_is_refused_and_costs_nothing(edge) -> None:
    assert_refused(edge.post(**BROWSER), 403, "host_not_allowed")
    assert edge.untouched()


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"host": "evil.example:8080", "content-type": "application/json"}, 403, "host_not_allowed"),  # DNS rebinding
        ({"host": "localhost.evil.example", "content-type": "application/json"}, 403, "host_not_allowed"),
        ({"origin": "http://evil.example", "content-type": "application/json"}, 403, "origin_not_allowed"),
        ({"origin": "http://localhost:3000", "content-type": "application/json"}, 403, "origin_not_allowed"),
        (
            {"origin": "null", "content-type": "application/json"},
            403,
            "origin_not_allowed",
        ),  # a sandboxed page, file://
        ({"origin": "http://evil.example", "content-type": "text/plain;charset=UTF-8"}, 403, "origin_not_allowed"),
        ({"content-type": "text/plain;charset=UTF-8"}, 415, "unsupported_media_type"),
        ({"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"content-type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
        ({}, 415, "unsupported_media_type"),  # fetch() with a Blob body sends no Content-Type
    ],
)
def test_hostile_requests_are_refused_before_routing(edge, headers, status, code) -> None:
    assert_refused(edge.post(**headers), status, code)
    assert edge.untouched()


def test_feedback_takes_json_only(edge) -> None:
    body = json.dumps({"decision_id": "0" * 26, "rating": -1}).encode()
    assert_refused(edge.post(body, "/v1/feedback", **{"content-type": "text/plain"}), 415, "unsupported_media_type")
    assert edge.post(body, "/v1/feedback", **{"content-type": "application/json"}).status_code == 404


def test_what_the_user_runs_is_served(edge) -> None:
    port = edge.server.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "127.0.0.1"):
        assert edge.post(host=host, **{"content-type": "application/json"}).status_code == 200
    own = edge.post(origin=f"http://localhost:{port}", **{"content-type": "application/json; charset=utf-8"})
    assert own.status_code == 200 and own.json()["choices"][0]["message"]["content"] == "ok"
    # each of the five was answered and recorded: the first by the strong model, the repeats from the answer cache
    records = edge.service.log.records()
    assert len(records) == 5 and edge.service.strong.calls == 1
    assert sum(record.reason == "cache:exact" for record in records) == 4
    response = client_for(edge.server).chat.completions.create(model="strong", messages=PROMPT, max_tokens=4)
    assert response.choices[0].message.content == "ok" and response.model_extra["routing"]["route"] == "strong"


def test_configured_hosts_and_origins_are_served_with_cors(tmp_path, router_dir) -> None:  # noqa: F811
    with edge_server(
        tmp_path, router_dir, allowed_hosts="myhost.lan, other.lan", allowed_origins=["http://localhost:3000/"]
    ) as edge:
        assert edge.post(host="myhost.lan:8080", **{"content-type": "application/json"}).status_code == 200
        assert_refused(edge.post(host="evil.example", **{"content-type": "application/json"}), 403, "host_not_allowed")
        preflight = httpx.options(
            edge.url + "/v1/chat/completions",
            timeout=30,
            headers={
                "origin": "http://localhost:3000",
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
        answer = edge.post(origin="http://localhost:3000", **{"content-type": "application/json"})
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://localhost:3000"
        assert_refused(
            edge.post(origin="http://localhost:3001", **{"content-type": "application/json"}), 403, "origin_not_allowed"
        )


def test_a_token_guards_every_route_but_health(guarded) -> None:
    json_body = {"content-type": "application/json"}
    missing = guarded.post(**json_body)
    assert_refused(missing, 401, "invalid_token")
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_refused(guarded.post(authorization="Bearer wrong-token", **json_body), 401, "invalid_token")
    assert_refused(guarded.post(authorization=TOKEN, **json_body), 401, "invalid_token")  # no "Bearer "
    assert_refused(httpx.get(guarded.url + "/v1/models", timeout=30), 401, "invalid_token")
    assert guarded.untouched()
    assert httpx.get(guarded.url + "/health", timeout=30).status_code == 200
    assert guarded.post(authorization=f"Bearer {TOKEN}", **json_body).status_code == 200
    assert guarded.service.strong.calls == 1
    client = openai.OpenAI(base_url=guarded.url + "/v1", api_key=TOKEN, max_retries=0, timeout=30)
    assert client.chat.completions.create(model="strong", messages=PROMPT).choices[0].message.content == "ok"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guarded.url + "/v1", api_key="wrong", max_retries=0, timeout=30).models.list()


def test_the_token_does_not_lift_the_host_check(guarded) -> None:
    response = guarded.post(authorization=f"Bearer {TOKEN}", **BROWSER)
    assert_refused(response, 403, "host_not_allowed")
    assert guarded.untouched()


def _body(size: int, chunk: int = 1 << 20) -> Iterator[bytes]:
    for _ in range(size // chunk):
        yield b"x" * chunk


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_upload_is_refused_without_being_read(edge, declared) -> None:
    size = 50 << 20
    headers = {"content-type": "application/json"} | ({"content-length": str(size)} if declared else {})
    tracemalloc.start()  # the server runs in this process: its allocations are counted too
    try:
        started = time.monotonic()
        response = httpx.post(edge.url + "/v1/chat/completions", content=_body(size), headers=headers, timeout=60)
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_refused(response, 413, "body_too_large")
    assert str(MAX_BODY_BYTES) in response.json()["error"]["message"]
    assert peak < 16 << 20, f"{peak >> 20} MB allocated for a {size >> 20} MB body"
    assert elapsed < 15 and edge.untouched()


@pytest.mark.parametrize("body", [{"max_tokens": True}, {"max_tokens": "4"}, {"temperature": "0.5"}, {"n": True}])
def test_lax_numbers_are_invalid_values(edge, body) -> None:
    request = json.dumps({"model": "strong", "messages": PROMPT, **body}).encode()
    response = edge.post(request, **{"content-type": "application/json"})
    assert_refused(response, 422, "invalid_value")
    assert response.json()["error"]["param"] == next(iter(body))
    assert edge.untouched()


def test_serving_off_loopback_needs_a_token(tmp_path, router_dir) -> None:  # noqa: F811
    for host in ("0.0.0.0", "::", "192.168.1.20", "mybox.lan"):
        with pytest.raises(ConfigError, match="server_token"):
            check_bind(host, Settings())
        check_bind(host, Settings(server_token=TOKEN))
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_bind(host, Settings())
    service = make_service(tmp_path, router_dir, CountingModel("weak-model"), None)
    with pytest.raises(ConfigError):
        create_app(service, host="0.0.0.0")


def test_the_settings_come_from_the_environment_with_the_token_masked(tmp_path) -> None:
    loaded = load_settings(
        env={
            "HYBRID_ROUTER_ALLOWED_HOSTS": "myhost.lan, other.lan",
            "HYBRID_ROUTER_ALLOWED_ORIGINS": "http://localhost:3000",
            "HYBRID_ROUTER_SERVER_TOKEN": TOKEN,
        },
        config_path=tmp_path / "none.toml",
    )
    assert loaded.settings.allowed_hosts == ["myhost.lan", "other.lan"]
    assert loaded.settings.allowed_origins == ["http://localhost:3000"]
    rows = {name: (value, source) for name, value, source in describe(loaded)}
    assert rows["server_token"] == ("****ests", "env:HYBRID_ROUTER_SERVER_TOKEN")
    assert rows["allowed_hosts"][1] == "env:HYBRID_ROUTER_ALLOWED_HOSTS"
    with pytest.raises(ConfigError, match="allowed_origins"):
        load_settings(env={"HYBRID_ROUTER_ALLOWED_ORIGINS": "localhost:3000"}, config_path=tmp_path / "none.toml")
