"""OpenAICompatBackend against a real OpenAI-compatible server: the stand-in container's /v1 routes with a real
llama.cpp model behind an API key."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("llama_cpp")

from hybrid_router.backends.base import BackendError  # noqa: E402
from hybrid_router.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from local_stack.container import create_container_app  # noqa: E402
from local_stack.model import LlamaTextModel  # noqa: E402
from local_stack.servers import ServerThread  # noqa: E402
from local_stack.weights import resolve_model  # noqa: E402

KEY = "sk-local-test"
MESSAGES = [{"role": "user", "content": "Name a primary color. One word."}]


@pytest.fixture(scope="module")
def server():
    model = LlamaTextModel(
        resolve_model(os.environ.get("HYBRID_ROUTER_TEST_STRONG_MODEL", "smollm2")), n_ctx=1024, n_threads=1
    )
    with ServerThread(create_container_app(model, api_key=KEY), name="openai-container") as running:
        yield running


@pytest.mark.parametrize("header", ["authorization", "x-api-key"])
def test_complete_and_stream_agree(server, header):
    strong = OpenAICompatBackend(f"{server.url}/v1", api_key=KEY, model="stand-in", api_key_header=header, timeout_s=60)
    completion = strong.complete(MESSAGES, max_tokens=6, temperature=0.0)
    assert completion.text.strip()
    assert completion.prompt_tokens > 5 and 1 <= completion.completion_tokens <= 6
    stream = strong.stream(MESSAGES, max_tokens=6, temperature=0.0)
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            usage = done.value
            break
    assert "".join(pieces) == completion.text
    assert (usage.prompt_tokens, usage.completion_tokens) == (completion.prompt_tokens, completion.completion_tokens)
    assert usage.finish_reason == completion.finish_reason


def test_wrong_key_is_strong_auth(server):
    strong = OpenAICompatBackend(f"{server.url}/v1", api_key="wrong", model="stand-in", timeout_s=10)
    with pytest.raises(BackendError) as raised:
        strong.complete(MESSAGES, max_tokens=4)
    assert raised.value.cause == "strong_auth"
    assert "API key" in str(raised.value)


def test_invalid_request_carries_the_server_message(server):
    strong = OpenAICompatBackend(f"{server.url}/v1", api_key=KEY, model="stand-in", timeout_s=10)
    with pytest.raises(BackendError) as raised:
        strong.complete([{"role": "wizard", "content": "hi"}], max_tokens=4)
    assert raised.value.cause == "strong_rejected_input"  # the server refused the input: no local fallback
    assert "invalid request body" in str(raised.value)


def test_prompt_over_the_context_is_rejected_input(server):
    strong = OpenAICompatBackend(f"{server.url}/v1", api_key=KEY, model="stand-in", timeout_s=30)
    with pytest.raises(BackendError) as raised:
        strong.complete([{"role": "user", "content": " ".join(["word"] * 1100)}], max_tokens=4)
    assert (raised.value.cause, raised.value.status_code) == ("strong_rejected_input", 400)
    assert (
        "rejected the input (422): Input validation error: `inputs` tokens + `max_new_tokens` must be <= 1024"
        in str(raised.value)
    )
