"""The answer cache end to end: the official openai client against `serve`'s app on a real uvicorn server.

Weak: the real SmolLM2-135M GGUF. Strong: a stand-in OpenAI-compatible server over HTTP that counts the requests
it answers, so a repeat served from the cache is seen not to reach (or be paid to) the strong model.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")
openai = pytest.importorskip("openai")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402

from edge_client.server import create_app  # noqa: E402
from tests.functional.test_edge_server import (  # noqa: E402, F401  (fixtures: router_dir, weak)
    ALWAYS_STRONG,
    PROMPT,
    REPO,
    STRONG_NAME,
    ServerThread,
    client_for,
    logged,
    make_service,
    router_dir,
    strong_backend,
    weak,
)

pytestmark = pytest.mark.slow
ANSWER = "The sky is blue on a clear day, and grey when it rains."


def stand_in_strong() -> tuple[FastAPI, list[dict]]:
    """An OpenAI-compatible strong model: answers every request with ANSWER (plain or streamed, with usage)."""
    app = FastAPI()
    seen: list[dict] = []

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        seen.append(body)
        usage = {"prompt_tokens": 12, "completion_tokens": 14, "total_tokens": 26}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": STRONG_NAME,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                }
            )

        def events():
            base = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": STRONG_NAME}
            for word in ANSWER.split(" "):
                delta = {"content": word + " "}
                yield f"data: {json.dumps({**base, 'choices': [{'index': 0, 'delta': delta}]})}\n\n"
            done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(done)}\n\n"
            yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app, seen


@pytest.fixture
def cached_edge(tmp_path, router_dir, weak):
    app, seen = stand_in_strong()
    with ServerThread(app) as strong:
        service = make_service(tmp_path, router_dir, weak, strong_backend(strong.url))
        with ServerThread(create_app(service)) as server:
            yield server, service, seen


def ask(server: ServerThread, stream: bool, **extra) -> tuple[str, dict, dict]:
    """(text, routing, response headers) of one strong chat completion, streamed or not."""
    client = client_for(server)
    if not stream:
        raw = client.chat.completions.with_raw_response.create(
            model=ALWAYS_STRONG, messages=PROMPT, max_tokens=16, **extra
        )
        response = raw.parse()
        return response.choices[0].message.content, response.model_extra["routing"], dict(raw.headers)
    pieces, routing = [], None
    with client.chat.completions.with_streaming_response.create(
        model=ALWAYS_STRONG, messages=PROMPT, max_tokens=16, stream=True, **extra
    ) as raw:
        headers = dict(raw.headers)
        for chunk in raw.parse():
            for choice in chunk.choices:
                pieces.append(choice.delta.content or "")
            routing = (chunk.model_extra or {}).get("routing") or routing
    assert routing is not None
    return "".join(pieces), routing, headers


@pytest.mark.parametrize("stream", [False, True])
def test_a_repeated_strong_prompt_is_answered_from_the_cache_at_no_strong_cost(cached_edge, stream) -> None:
    server, service, seen = cached_edge
    first_text, first, _ = ask(server, stream)
    text, routing, headers = ask(server, stream)
    assert len(seen) == 1, "the repeat reached the strong model"
    assert text == first_text and text.strip() == ANSWER
    assert (first["route"], first["reason"]) == ("strong", "routed") and first["cost_usd"] > 0
    assert (routing["route"], routing["reason"], routing["model"]) == ("strong", "cache:exact", STRONG_NAME)
    assert routing["cost_usd"] == 0 and routing["strong_cost_usd"] == pytest.approx(first["cost_usd"])
    assert routing["saving_usd"] == pytest.approx(first["cost_usd"])
    assert headers["x-hybrid-router-reason"] == "cache:exact"
    record, paid = logged(service, routing["decision_id"]), logged(service, first["decision_id"])
    assert record.reason == "cache:exact" and record.cached_from == paid.decision_id and paid.cached_from is None
    assert record.cost_usd == 0 and record.strong_cost_usd == pytest.approx(paid.cost_usd) and record.status == "ok"
    assert (record.prompt_tokens, record.completion_tokens) == (paid.prompt_tokens, paid.completion_tokens) == (12, 14)
    # the other form of the same request is a hit too
    other_text, other, _ = ask(server, not stream)
    assert other["reason"] == "cache:exact" and other_text == text and len(seen) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_cache_control_no_cache_and_the_request_field_skip_the_cache(cached_edge, stream) -> None:
    server, service, seen = cached_edge
    ask(server, stream)
    _, fresh, _ = ask(server, stream, extra_headers={"Cache-Control": "no-cache"})
    _, field, _ = ask(server, stream, extra_body={"cache": False})
    assert len(seen) == 3 and fresh["reason"] == field["reason"] == "routed"
    assert fresh["cost_usd"] > 0 and logged(service, fresh["decision_id"]).cached_from is None
    assert all("cache" not in body for body in seen), "the request field must not reach the strong model"
    _, hit, _ = ask(server, stream)
    assert hit["reason"] == "cache:exact" and len(seen) == 3


def test_usage_shows_the_cache_hits_and_what_they_saved(cached_edge, tmp_path) -> None:
    server, service, seen = cached_edge
    _, paid, _ = ask(server, False)
    ask(server, False)
    ask(server, True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(HYBRID_ROUTER_CONFIG=str(tmp_path / "none.toml"), HYBRID_ROUTER_DATA_DIR=str(tmp_path))

    def usage(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "edge_client.cli", "usage", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    totals = json.loads(usage("--json"))["totals"]
    assert totals["cache_hits"] == 2 and totals["cache_saving_usd"] == pytest.approx(2 * paid["cost_usd"])
    assert totals["requests"] == 3 and totals["cost_usd"] == pytest.approx(paid["cost_usd"])
    assert "answer cache: 2 strong answers served again, saved $" in usage()


def test_a_redacted_private_request_is_never_cached(tmp_path, router_dir, weak) -> None:
    """With privacy = redact the strong model answers a private prompt (placeholders out, values back in): the
    answer, which holds the values again, is not kept, and the repeat is asked again."""
    app, seen = stand_in_strong()
    private = [{"role": "user", "content": "Write a haiku for my colleague at jane.doe@acme-corp.com."}]
    with ServerThread(app) as strong:
        service = make_service(tmp_path, router_dir, weak, strong_backend(strong.url), privacy="redact")
        with ServerThread(create_app(service)) as server:
            client = client_for(server)
            for _ in range(2):
                answer = client.chat.completions.create(model=ALWAYS_STRONG, messages=private, max_tokens=16)
                assert answer.model_extra["routing"]["reason"] != "cache:exact"
    assert len(seen) == 2
    assert "jane.doe" not in json.dumps(seen)  # the strong side saw a placeholder
    assert service.pipeline.cache is not None and len(service.pipeline.cache.cache) == 0  # type: ignore[arg-type]
