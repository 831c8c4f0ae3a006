"""Routing that follows the conversation, through the device's real server (uvicorn, the tiny real router file,
onnxruntime): a scripted 4-turn conversation does not flip between models, and every record carries the
conversation's key (the client's own or a derived hash), never the text."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edge_client.config import Settings
from edge_client.routing_source import LocalRouteSource
from edge_client.server import create_app
from edge_client.service import EdgeService
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread

# The tiny router's scores (a fixed function of the token ids): 0.396, 0.198, 0.311, 0.906, 0.190.
MODEL = "router-tiny-0.35"
OPENING = "Prove Fermat's little theorem."
TURNS = [
    OPENING,
    "thanks, now shorten it",
    "Translate that into French.",
    "Enumerate quaternion eigenvalue homomorphisms",
]
EASY_AND_INDEPENDENT = "What is the capital of France?"


@pytest.fixture
def server(tmp_path, write_tiny_router, fixed_backend):
    router_dir = tmp_path / "router"
    write_tiny_router(router_dir)

    def start(**settings) -> tuple[ServerThread, DecisionLog]:
        config = Settings(data_dir=str(tmp_path / "data"), router_path=str(router_dir), max_tokens=16, **settings)
        log = DecisionLog(config.decision_log_path)
        service = EdgeService(
            config,
            weak=fixed_backend("local-weak", "a local answer"),
            strong=fixed_backend("cloud-strong", "a strong answer"),
            route_source=LocalRouteSource(str(router_dir)),
            decision_log=log,
        )
        started.append(ServerThread(create_app(service), name="edge").start())
        return started[-1], log

    started: list[ServerThread] = []
    yield start
    for thread in started:
        thread.stop()


def converse(url: str, turns: list[str], headers: dict | None = None, **body) -> list[dict]:
    """Sends each turn with the conversation so far (the answers the server gave); returns each `routing`."""
    messages: list[dict] = [{"role": "system", "content": "Be brief."}]
    routings = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for text in turns:
            messages.append({"role": "user", "content": text})
            response = client.post(
                "/v1/chat/completions", json={"model": MODEL, "messages": messages, **body}, headers=headers or {}
            )
            assert response.status_code == 200, response.text
            reply = response.json()
            routings.append(reply["routing"])
            messages.append({"role": "assistant", "content": reply["choices"][0]["message"]["content"]})
    return routings


def flips(routes: list[str]) -> int:
    return sum(a != b for a, b in zip(routes, routes[1:], strict=False))


def test_a_conversation_that_works_on_a_strong_answer_stays_strong(server):
    thread, log = server()
    routings = converse(thread.url, TURNS)
    assert [r["route"] for r in routings] == ["strong"] * 4
    assert [r["reason"] for r in routings] == ["routed", "affinity:strong", "affinity:strong", "routed"]
    assert all(r["score"] < 0.35 for r in routings[1:3])  # alone, turns 2 and 3 would have gone local
    records = log.records()
    assert [r.reason for r in records] == [r["reason"] for r in routings]
    assert len({r.conversation_id for r in records}) == 1


def test_per_message_routing_flips_where_the_conversation_does_not(server):
    thread, _ = server(conversation_affinity=False)
    routes = [r["route"] for r in converse(thread.url, TURNS)]
    assert routes == ["strong", "weak", "weak", "strong"] and flips(routes) == 2


def test_an_independent_clearly_easy_message_leaves_the_strong_model(server):
    thread, _ = server()
    routings = converse(thread.url, [OPENING, EASY_AND_INDEPENDENT])
    assert [(r["route"], r["reason"]) for r in routings] == [("strong", "routed"), ("weak", "routed")]
    assert routings[0]["conversation_id"] == routings[1]["conversation_id"]  # the same conversation, let go


def test_the_derived_key_is_recorded_and_is_not_the_text(server):
    thread, log = server()
    converse(thread.url, TURNS[:2])
    converse(thread.url, ["Another opening"])
    first, second, other = log.records()
    assert first.conversation_id == second.conversation_id
    assert first.conversation_id.startswith("d-") and other.conversation_id.startswith("d-")
    assert other.conversation_id != first.conversation_id
    stored = Path(log.path).read_bytes()
    assert b"Fermat" not in stored
    assert first.model_dump()["conversation_id"] == first.conversation_id


def test_the_clients_key_is_recorded_from_the_header_or_metadata(server):
    thread, log = server()
    routings = converse(thread.url, [OPENING], headers={"x-conversation-id": "chat-7"})
    converse(thread.url, [OPENING], metadata={"conversation_id": "chat-8"})
    assert routings[0]["conversation_id"] == "chat-7"
    assert [r.conversation_id for r in log.records()] == ["chat-7", "chat-8"]


def test_a_given_key_carries_affinity_across_requests(server):
    thread, _ = server()
    converse(thread.url, [OPENING], headers={"x-conversation-id": "chat-9"})
    # The client sends the follow-up with a shortened history: the key, not the opening, finds the strong turn.
    with httpx.Client(base_url=thread.url, timeout=30) as client:
        reply = client.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [
                    {"role": "assistant", "content": "a strong answer"},
                    {"role": "user", "content": "ok"},
                    {"role": "user", "content": "now shorten it"},
                ],
            },
            headers={"x-conversation-id": "chat-9"},
        ).json()
    assert (reply["routing"]["route"], reply["routing"]["reason"]) == ("strong", "affinity:strong")


def test_a_client_that_sends_only_the_new_message_keeps_affinity_by_its_key(server):
    thread, _ = server()
    converse(thread.url, [OPENING], headers={"x-conversation-id": "chat-10"})
    with httpx.Client(base_url=thread.url, timeout=30) as client:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "now shorten it"}]}
        keyed = client.post("/v1/chat/completions", json=body, headers={"x-conversation-id": "chat-10"}).json()
        fresh = client.post("/v1/chat/completions", json=body).json()
    assert (keyed["routing"]["route"], keyed["routing"]["reason"]) == ("strong", "affinity:strong")
    assert (fresh["routing"]["route"], fresh["routing"]["reason"]) == ("weak", "routed")


def test_private_data_stays_local_even_in_a_conversation_kept_strong(server):
    """Affinity keeps a follow-up strong, but privacy has the last word: a card number never leaves the device."""
    thread, log = server()
    routings = converse(thread.url, [OPENING, "thanks, now shorten it, my card is 4111 1111 1111 1111"])
    assert routings[0]["route"] == "strong"
    assert (routings[1]["route"], routings[1]["reason"]) == ("weak", "privacy:payment_card")
    assert routings[1]["conversation_id"] == routings[0]["conversation_id"]
