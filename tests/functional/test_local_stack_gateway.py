"""Answers longer than API Gateway's 29 s, through the local stack's API Gateway stand-in (local_stack.gateway).

The stack runs the deployed design: chat is the gateway's streamed integration (template.yaml's ChatFunction event,
ResponseTransferMode RESPONSE_STREAM), every other route a buffered one cut at 29 s. The strong stand-in is the real
llama.cpp model, slowed per token (token_delay_s) to the pace of a large model on one GPU, so its answer takes
longer than 29 s: it arrives whole and as it is generated, and the cloud's record holds every token. The same
answer through a buffered integration (the design before: Mangum, API Gateway waiting for the whole response) is
cut at 29 s.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from local_stack.gateway import INTEGRATION_TIMEOUT_BODY, INVALID_API_KEY_BODY

REPO = Path(__file__).resolve().parents[2]
TOKEN_DELAY_S = 0.25  # ~4 tokens/s: a 70B-class model on one GPU is 10-30; what matters is > 29 s in all
MAX_TOKENS = 124  # x (0.25 s + the model's own time) > 29 s
PROMPT = "Write the numbers from one to three hundred in words, each on its own line."


def test_gateway_refusals_are_the_templates() -> None:
    """The stand-in answers a cut and a missing key with the bodies template.yaml's GatewayResponses define."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((REPO / "template.yaml").read_text(), Loader=Loader)  # noqa: S506 (a SafeLoader)
    responses = template["Resources"]["HybridRouterApi"]["Properties"]["GatewayResponses"]
    for name, body, status in (
        ("INTEGRATION_TIMEOUT", INTEGRATION_TIMEOUT_BODY, 504),
        ("INVALID_API_KEY", INVALID_API_KEY_BODY, 401),
    ):
        assert json.loads(responses[name]["ResponseTemplates"]["application/json"]) == body
        assert responses[name].get("StatusCode", status) == status


@pytest.fixture(scope="module")
def slow_stack(tmp_path_factory, write_tiny_router):
    pytest.importorskip("llama_cpp")
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    from local_stack.stack import start_stack

    router = tmp_path_factory.mktemp("gateway-router")
    write_tiny_router(router)
    with start_stack(
        os.environ.get("HYBRID_ROUTER_TEST_STRONG_MODEL", "smollm2"),
        n_ctx=1024,
        n_threads=1,
        router_path=router,
        routers_bucket=None,
        token_delay_s=TOKEN_DELAY_S,
        table_name=f"gateway-{router.name}",  # moto's tables live for the whole test process: a name of its own
    ) as running:
        yield running


def _chat(stack, stream: bool) -> dict:
    return {
        "model": stack.info.model_name,  # the strong model, by name
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "stream": stream,
    }


def _record(stack, decision_id: str):
    from hybrid_router.stores.dynamodb import DynamoDecisionStore, make_client

    info = stack.info
    store = DynamoDecisionStore(info.table_name, client=make_client(endpoint_url=info.dynamodb_url, region=info.region))
    records = {r.decision_id: r for r in store.records_for_device(info.tenant, info.device)}
    return records.get(decision_id)


@pytest.mark.slow
def test_a_streamed_answer_longer_than_29_s_arrives_whole_and_is_recorded(slow_stack) -> None:
    from hybrid_router.ulid import new_ulid

    info = slow_stack.info
    assert info.gateway_url
    headers = {"x-api-key": info.api_key}
    streamed_id, buffered_id = new_ulid(), new_ulid()

    # The design before: API Gateway waits for the whole response and gives up at 29 s. Started once the streamed
    # request holds the model (one generation at a time), so both run at once; its own answer takes as long.
    from local_stack.gateway import create_gateway_app
    from local_stack.servers import ServerThread

    buffered_gateway = ServerThread(
        create_gateway_app(info.api_url, {info.api_key: "local-stack-key"}, streamed_routes=()), name="buffered"
    ).start()
    buffered: dict = {}

    def ask_buffered() -> None:
        started = time.monotonic()
        answer = httpx.post(
            f"{buffered_gateway.url}/v1/chat/completions",
            json=_chat(slow_stack, True),
            headers={**headers, "x-decision-id": buffered_id},
            timeout=120,
        )
        buffered.update(status=answer.status_code, body=answer.json(), seconds=time.monotonic() - started)

    pieces: list[str] = []
    finish = None
    started = time.monotonic()
    first_piece_s = None
    worker = threading.Thread(target=ask_buffered)
    try:
        with httpx.stream(
            "POST",
            f"{info.gateway_url}/v1/chat/completions",
            json=_chat(slow_stack, True),
            headers={**headers, "x-decision-id": streamed_id},
            timeout=httpx.Timeout(120, read=60),
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                for choice in chunk.get("choices", []):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        if first_piece_s is None:
                            first_piece_s = time.monotonic() - started
                            worker.start()
                        pieces.append(text)
                    finish = choice.get("finish_reason") or finish
        total_s = time.monotonic() - started
        worker.join(120)
    finally:
        buffered_gateway.stop()
    print(f"\nstreamed: first piece {first_piece_s:.2f} s, {len(pieces)} pieces in {total_s:.1f} s ({finish})")
    print(f"buffered: {buffered.get('status')} after {buffered.get('seconds', 0):.1f} s")

    assert total_s > 29.5, f"the answer must outlast API Gateway's 29 s to prove anything ({total_s:.1f} s)"
    assert first_piece_s is not None and first_piece_s < 5, first_piece_s
    assert finish == "length" and len(pieces) >= MAX_TOKENS - 2, (finish, len(pieces))
    # The cloud recorded the whole answer it served, under the caller the gateway named.
    record = _record(slow_stack, streamed_id)
    assert record is not None, "the streamed answer was not recorded"
    assert record.status == "ok" and record.route == "strong"
    assert record.completion_tokens == len(pieces)

    # The same answer through a buffered integration: cut at 29 s, nothing of it reached the client.
    assert buffered["status"] == 504 and buffered["body"] == INTEGRATION_TIMEOUT_BODY, buffered
    assert 28.5 < buffered["seconds"] < 35, buffered


@pytest.mark.slow
def test_a_stream_the_client_abandons_behind_the_gateway_is_recorded(slow_stack) -> None:
    """A client that hangs up mid-answer: the gateway closes its stream to the function, which records what it
    sent (status error, client_disconnected), so the cloud's account still holds everything served."""
    from hybrid_router.ulid import new_ulid

    info = slow_stack.info
    decision_id = new_ulid()
    received = 0
    with httpx.stream(
        "POST",
        f"{info.gateway_url}/v1/chat/completions",
        json=_chat(slow_stack, True),
        headers={"x-api-key": info.api_key, "x-decision-id": decision_id},
        timeout=httpx.Timeout(60, read=30),
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: ") and '"content":' in line and '"content": ""' not in line:
                received += 1
                if received == 4:
                    break  # leaving the block closes the connection
    deadline = time.monotonic() + 20
    record = None
    while time.monotonic() < deadline and record is None:
        record = _record(slow_stack, decision_id)
        time.sleep(0.2)
    assert record is not None, "an abandoned stream was not recorded"
    assert record.status == "error" and record.error == "client_disconnected"
    assert received <= record.completion_tokens < MAX_TOKENS


@pytest.mark.slow
def test_the_gateway_wants_a_key_and_writes_the_request_context_itself(slow_stack) -> None:
    """Runs after the tests above: the caller's usage holds their answers, however the request context is forged."""
    info = slow_stack.info
    assert httpx.get(f"{info.gateway_url}/health").status_code == 200
    missing = httpx.get(f"{info.gateway_url}/v1/models")
    assert missing.status_code == 401 and missing.json() == INVALID_API_KEY_BODY
    # A request context sent by the client is replaced by the gateway's: no way to name another key id.
    forged = json.dumps({"identity": {"apiKeyId": "someone-else"}})
    usage = httpx.get(
        f"{info.gateway_url}/v1/usage", headers={"x-api-key": info.api_key, "x-amzn-request-context": forged}
    )
    assert usage.status_code == 200, usage.text
    assert usage.json()["totals"]["requests"] >= 1  # the caller's own records, not someone-else's (none)
