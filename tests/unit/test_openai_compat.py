"""OpenAICompatBackend over real sockets against a small OpenAI-shaped server that misbehaves on request.

The happy path against a real llama.cpp model is in tests/functional/test_local_stack_openai.py.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from hybrid_router.backends.base import BackendError
from hybrid_router.backends.openai_compat import OpenAICompatBackend
from local_stack.servers import ServerThread

KEY = "sk-test-123"
MESSAGES = [{"role": "user", "content": "Say hi"}]


def _chunk(content=None, finish=None):
    delta = {"content": content} if content is not None else {}
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"


class _Cut(Exception):
    pass


def _misbehaving_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        if request.headers.get("authorization") != f"Bearer {KEY}" and request.headers.get("x-api-key") != KEY:
            return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "auth"}}, 401)
        body = await request.json()
        model = body["model"]
        if model == "slow":
            await asyncio.sleep(3)
        if model == "error-500":
            return JSONResponse({"error": {"message": "model overloaded, try later"}}, 500)
        if model.startswith("error-4"):  # TGI's shape, as TGI's Messages API answers
            return JSONResponse(
                {
                    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
                    "error_type": "validation",
                },
                int(model[6:]),
            )
        if model == "not-json":
            return JSONResponse(["not", "a", "completion"])
        if body.get("stream"):

            async def events():
                yield _chunk("Hel")
                yield _chunk("lo")
                if model == "cut":
                    raise _Cut("drop the connection")
                if model == "no-done":
                    return
                yield _chunk(finish="stop")
                usage = {"prompt_tokens": 9, "completion_tokens": 2}
                yield "data: " + json.dumps({"choices": [], "usage": usage}) + "\n\n"
                yield "data: [DONE]\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        return {
            "id": "x",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        }

    return app


@pytest.fixture(scope="module")
def server():
    with ServerThread(_misbehaving_app(), log_level="critical", name="openai-misbehaving") as running:
        yield running


def backend(server, model="ok", key=KEY, header="authorization", timeout_s=5.0):
    return OpenAICompatBackend(f"{server.url}/v1", api_key=key, model=model, timeout_s=timeout_s, api_key_header=header)


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_complete_with_either_key_header(server, header):
    completion = backend(server, header=header).complete(MESSAGES, max_tokens=4)
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens) == ("Hello", 9, 1)
    assert completion.model == "ok"


def test_stream_yields_pieces_and_usage(server):
    client = backend(server)
    stream = client.stream(MESSAGES, max_tokens=4)
    assert [next(stream), next(stream)] == ["Hel", "lo"]
    with pytest.raises(StopIteration) as done:
        next(stream)
    assert done.value.value[:5] == (9, 2, "stop", 0.0, False)  # reported, not estimated


def test_wrong_key_is_strong_auth(server):
    with pytest.raises(BackendError) as raised:
        backend(server, key="wrong").complete(MESSAGES)
    assert raised.value.cause == "strong_auth"
    assert "Incorrect API key provided" in str(raised.value)
    with pytest.raises(BackendError) as raised:
        list(backend(server, key=None).stream(MESSAGES))
    assert raised.value.cause == "strong_auth"


def test_server_error_carries_its_message(server):
    with pytest.raises(BackendError) as raised:
        backend(server, model="error-500").complete(MESSAGES)
    assert raised.value.cause == "strong_error"
    assert "model overloaded, try later" in str(raised.value)


@pytest.mark.parametrize(
    "status, cause",
    [
        (400, "strong_rejected_input"),
        (413, "strong_rejected_input"),
        (422, "strong_rejected_input"),
        (429, "strong_error"),
        (404, "strong_error"),
    ],
)
@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_a_refused_input_is_rejected_input_other_4xx_strong_error(server, status, cause, operation):
    """400/413/422 say the input was refused (the device does not fall back from it); 429, 404 are the endpoint's."""
    client = backend(server, model=f"error-{status}")
    with pytest.raises(BackendError) as raised:
        client.complete(MESSAGES) if operation == "complete" else list(client.stream(MESSAGES))
    assert raised.value.cause == cause
    assert "Input validation error" in str(raised.value)
    if cause == "strong_rejected_input":
        assert raised.value.status_code == 400 and f"rejected the input ({status})" in str(raised.value)


def test_body_that_is_not_a_completion_is_strong_error(server):
    with pytest.raises(BackendError) as raised:
        backend(server, model="not-json").complete(MESSAGES)
    assert raised.value.cause == "strong_error"


def test_timeout(server):
    with pytest.raises(BackendError) as raised:
        backend(server, model="slow", timeout_s=0.5).complete(MESSAGES)
    assert raised.value.cause == "strong_timeout"


@pytest.mark.parametrize("model", ["cut", "no-done"])
def test_stream_broken_after_first_pieces(server, model):
    client = backend(server, model=model)
    received = []
    with pytest.raises(BackendError) as raised:
        for piece in client.stream(MESSAGES):
            received.append(piece)
    assert raised.value.cause == "strong_stream_broken"
    assert received == ["Hel", "lo"]


def test_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAICompatBackend(f"http://127.0.0.1:{port}/v1", model="ok", timeout_s=2)
    with pytest.raises(BackendError) as raised:
        client.complete(MESSAGES)
    assert raised.value.cause == "strong_unreachable"
