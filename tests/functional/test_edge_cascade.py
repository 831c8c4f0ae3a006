"""Cascade mode end to end: the official openai client against `serve`'s app on a real uvicorn server.

Weak: the real SmolLM2-135M GGUF drafting with token log-probabilities. Strong: a second edge server with its own
llama model, over HTTP. The band and the minimum confidence are forced by settings and by the model name
(`router-cascade-0` keeps every draft, `router-cascade-1` keeps none), so both outcomes are exercised.
"""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")

from edge_client.server import create_app  # noqa: E402
from tests.functional.test_edge_server import (  # noqa: E402, F401  (fixtures: router_dir, weak, strong_server)
    PROMPT,
    STRONG_NAME,
    ServerThread,
    client_for,
    closed_port,
    logged,
    make_service,
    router_dir,
    strong_backend,
    strong_server,
    weak,
)

pytestmark = pytest.mark.slow
EVERYTHING_DRAFTS = {"cascade_low": 0.0, "cascade_high": 1.0}
KEEP, ESCALATE = "router-cascade-0", "router-cascade-1"


def ask(server: ServerThread, model: str, stream: bool) -> tuple[str, dict, str]:
    """(text, routing, finish reason) of one chat completion, streamed or not."""
    client = client_for(server)
    if not stream:
        response = client.chat.completions.create(model=model, messages=PROMPT, max_tokens=16)
        return response.choices[0].message.content, response.model_extra["routing"], response.choices[0].finish_reason
    pieces, routing, finish = [], None, None
    for chunk in client.chat.completions.create(model=model, messages=PROMPT, max_tokens=16, stream=True):
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
        routing = (chunk.model_extra or {}).get("routing") or routing
    assert routing is not None
    return "".join(pieces), routing, finish


@pytest.fixture
def cascade_edge(tmp_path, router_dir, weak, strong_server):
    service = make_service(tmp_path, router_dir, weak, strong_backend(strong_server.url), **EVERYTHING_DRAFTS)
    with ServerThread(create_app(service)) as server:
        yield server, service


@pytest.mark.parametrize("stream", [False, True])
def test_a_confident_draft_is_the_answer(cascade_edge, stream: bool) -> None:
    server, service = cascade_edge
    text, routing, finish = ask(server, KEEP, stream)
    record = logged(service, routing["decision_id"])
    assert (record.route, record.reason, record.model_used) == ("weak", "cascade:kept", service.weak_name)
    assert routing["cascade"]["escalated"] is False and record.escalated is False
    assert 0.0 <= record.confidence <= 1.0 and record.draft_tokens == record.completion_tokens > 0
    assert record.draft_latency_ms > 0 and record.generation_latency_ms == pytest.approx(record.draft_latency_ms)
    assert record.cost_usd < record.strong_cost_usd and record.energy_wh > 0
    plain = client_for(server).chat.completions.create(model=service.weak_name, messages=PROMPT, max_tokens=16)
    assert text == plain.choices[0].message.content and finish == plain.choices[0].finish_reason


@pytest.mark.parametrize("stream", [False, True])
def test_an_unsure_draft_escalates_to_the_strong_model(cascade_edge, stream: bool) -> None:
    server, service = cascade_edge
    text, routing, _ = ask(server, ESCALATE, stream)
    record = logged(service, routing["decision_id"])
    assert text.strip()
    assert (record.route, record.reason, record.model_used) == ("strong", "cascade:escalated", STRONG_NAME)
    assert record.escalated is True and record.confidence < 1.0 and record.draft_tokens > 0
    assert record.draft_latency_ms > 0 and record.energy_wh > 0  # the discarded draft: time and energy
    assert record.cost_usd > 0 and record.completion_tokens > 0
    assert routing["cascade"] == {
        "confidence": round(record.confidence, 6),
        "escalated": True,
        "draft_tokens": record.draft_tokens,
        "draft_latency_ms": round(record.draft_latency_ms, 3),
    }


def test_the_band_settles_clear_cases_without_a_draft(tmp_path, router_dir, weak, strong_server) -> None:
    for band, route in (
        ({"cascade_low": 0.0, "cascade_high": 0.0}, "strong"),
        ({"cascade_low": 1.0, "cascade_high": 1.0}, "weak"),
    ):
        service = make_service(tmp_path / route, router_dir, weak, strong_backend(strong_server.url), **band)
        with ServerThread(create_app(service)) as server:
            _, routing, _ = ask(server, "router-cascade", stream=False)
        record = logged(service, routing["decision_id"])
        assert (record.route, record.reason, record.confidence, record.draft_tokens) == (route, "routed", None, 0)
        assert "cascade" not in routing


@pytest.mark.parametrize("stream", [False, True])
def test_a_failed_escalation_falls_back_to_the_draft(tmp_path, router_dir, weak, stream: bool) -> None:
    dead = strong_backend(f"http://127.0.0.1:{closed_port()}")
    service = make_service(tmp_path, router_dir, weak, dead, **EVERYTHING_DRAFTS)
    with ServerThread(create_app(service)) as server:
        text, routing, _ = ask(server, ESCALATE, stream)
    record = logged(service, routing["decision_id"])
    assert text.strip()
    assert (record.route, record.reason, record.status) == ("weak", "fallback:strong_unreachable", "ok")
    assert record.escalated is True and record.draft_tokens == record.completion_tokens > 0


def test_the_cascade_setting_makes_plain_router_cascade_and_names_are_listed(
    tmp_path, router_dir, weak, strong_server
) -> None:
    service = make_service(
        tmp_path,
        router_dir,
        weak,
        strong_backend(strong_server.url),
        cascade=True,
        cascade_min_confidence=0.0,
        **EVERYTHING_DRAFTS,
    )
    with ServerThread(create_app(service)) as server:
        client = client_for(server)
        assert "router-cascade" in [m.id for m in client.models.list()]
        assert client.models.retrieve("router-cascade-0.4").id == "router-cascade-0.4"
        _, routing, _ = ask(server, "router", stream=False)
    assert logged(service, routing["decision_id"]).reason == "cascade:kept"


def test_an_escalation_over_the_spend_cap_keeps_the_draft(tmp_path, router_dir, weak, strong_server) -> None:
    service = make_service(
        tmp_path, router_dir, weak, strong_backend(strong_server.url), daily_cap_usd=0.0, **EVERYTHING_DRAFTS
    )
    with ServerThread(create_app(service)) as server:
        text, routing, _ = ask(server, ESCALATE, stream=False)
    record = logged(service, routing["decision_id"])
    assert text.strip() and (record.route, record.reason, record.escalated) == ("weak", "budget:daily", True)
    assert record.cost_usd < record.strong_cost_usd and service.budget.reserved_usd == 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_a_draft_that_cannot_be_made_goes_to_the_strong_model(
    tmp_path, router_dir, strong_server, stream: bool
) -> None:
    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    missing = LlamaCppBackend(tmp_path / "no-such-model.gguf", name="local-missing")
    service = make_service(tmp_path, router_dir, missing, strong_backend(strong_server.url), **EVERYTHING_DRAFTS)
    with ServerThread(create_app(service)) as server:
        text, routing, _ = ask(server, KEEP, stream)
    record = logged(service, routing["decision_id"])
    assert text.strip()
    assert (record.route, record.reason, record.model_used) == ("strong", "fallback:local_model_missing", STRONG_NAME)
    assert record.confidence is None and record.draft_tokens == 0 and not record.escalated


def test_no_draft_and_no_strong_answer_is_a_clear_error_and_is_logged(tmp_path, router_dir) -> None:
    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    missing = LlamaCppBackend(tmp_path / "no-such-model.gguf", name="local-missing")
    dead = strong_backend(f"http://127.0.0.1:{closed_port()}")
    service = make_service(tmp_path, router_dir, missing, dead, **EVERYTHING_DRAFTS)
    with ServerThread(create_app(service)) as server:
        with pytest.raises(openai.APIStatusError) as failed:
            ask(server, KEEP, stream=False)
    assert failed.value.status_code >= 500
    assert "local_model_missing" in str(failed.value) and "strong_unreachable" in str(failed.value)
    [record] = service.log.records()
    assert (record.status, record.reason, record.confidence) == ("error", "fallback:local_model_missing", None)
