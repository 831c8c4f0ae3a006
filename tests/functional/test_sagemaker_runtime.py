"""boto3's real sagemaker-runtime client and SageMakerBackend against the local SageMaker runtime stand-in,
in front of the BYOC container running a real llama.cpp model.

The stand-in strong model is SmolLM2-135M by default (fast); HYBRID_ROUTER_TEST_STRONG_MODEL=qwen runs the
demo's Qwen2.5-Coder-0.5B instead.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import time

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

pytest.importorskip("llama_cpp")

from hybrid_router.backends.base import BackendError  # noqa: E402
from hybrid_router.backends.sagemaker import SageMakerBackend  # noqa: E402
from local_stack.container import create_container_app  # noqa: E402
from local_stack.model import LlamaTextModel  # noqa: E402
from local_stack.sagemaker_runtime import create_runtime_app  # noqa: E402
from local_stack.servers import ServerThread  # noqa: E402
from local_stack.weights import resolve_model  # noqa: E402

ENDPOINT = "strong-test"
MESSAGES = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
MAX_TOKENS = 8
N_CTX = 1024
LONG_TEXT = " ".join(["word"] * (N_CTX + 100))  # one token a word: over the context by itself


@pytest.fixture(scope="module")
def model() -> LlamaTextModel:
    return LlamaTextModel(
        resolve_model(os.environ.get("HYBRID_ROUTER_TEST_STRONG_MODEL", "smollm2")), n_ctx=N_CTX, n_threads=1
    )


@pytest.fixture(scope="module")
def runtime(model):
    with (
        ServerThread(create_container_app(model), name="container") as container,
        ServerThread(create_runtime_app({ENDPOINT: container.url}), log_level="critical", name="runtime") as server,
    ):
        server.container_url = container.url
        yield server


@pytest.fixture
def faults(runtime):
    def set_plan(**plan):
        httpx.post(f"{runtime.url}/_stand_in/faults", json=plan).raise_for_status()

    yield set_plan
    httpx.delete(f"{runtime.url}/_stand_in/faults").raise_for_status()


@pytest.fixture
def client(runtime):
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=runtime.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


def backend(runtime, body_format="tgi", timeout_s=60.0, endpoint=ENDPOINT) -> SageMakerBackend:
    return SageMakerBackend(
        endpoint,
        region="us-east-1",
        endpoint_url=runtime.url,
        body_format=body_format,
        timeout_s=timeout_s,
        connect_timeout_s=2,
    )


def _tgi_body(stream=False, details=True):
    body = {
        "inputs": "<|im_start|>user\nSay hello.<|im_end|>\n<|im_start|>assistant\n",
        "parameters": {
            "max_new_tokens": MAX_TOKENS,
            "details": details,
            "decoder_input_details": details,
            "stop": ["<|im_end|>"],
        },
    }
    if stream:
        body["stream"] = True
    return body


def test_invoke_endpoint_tgi_shape(client, model):
    response = client.invoke_endpoint(
        EndpointName=ENDPOINT, ContentType="application/json", Accept="application/json", Body=json.dumps(_tgi_body())
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    assert response["ContentType"] == "application/json"
    answer = json.loads(response["Body"].read())
    assert isinstance(answer, list) and answer[0]["generated_text"].strip()
    details = answer[0]["details"]
    assert 1 <= details["generated_tokens"] <= MAX_TOKENS
    assert len(details["prefill"]) == len(model.prompt_tokens(_tgi_body()["inputs"])) > 5


def test_invoke_endpoint_messages_shape(client):
    body = {"messages": MESSAGES, "max_tokens": MAX_TOKENS, "temperature": 0}
    response = client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(body))
    answer = json.loads(response["Body"].read())
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["usage"]["prompt_tokens"] > 5
    assert 1 <= answer["usage"]["completion_tokens"] <= MAX_TOKENS


def test_response_stream_is_decoded_by_boto3(client):
    response = client.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps(_tgi_body(stream=True, details=False)),
    )
    assert response["InvokedProductionVariant"] == "AllTraffic"
    events = list(response["Body"])
    assert events and all("PayloadPart" in e for e in events)
    lines = [line for line in b"".join(e["PayloadPart"]["Bytes"] for e in events).split(b"\n") if line.strip()]
    decoded = [json.loads(line.removeprefix(b"data:")) for line in lines]
    tokens = "".join(e["token"]["text"] for e in decoded if not e["token"]["special"])
    assert tokens.strip()
    assert decoded[-1]["generated_text"] == tokens
    assert decoded[-1]["details"]["generated_tokens"] == len(decoded) - 1


def test_unknown_endpoint_is_validation_error(client):
    with pytest.raises(client.exceptions.ValidationError) as raised:
        client.invoke_endpoint(EndpointName="no-such-endpoint", ContentType="application/json", Body=b"{}")
    assert "no-such-endpoint" in raised.value.response["Error"]["Message"]


def test_container_rejecting_the_body_is_model_error(client):
    with pytest.raises(client.exceptions.ModelError) as raised:
        client.invoke_endpoint(EndpointName=ENDPOINT, ContentType="application/json", Body=b'{"prompt": "x"}')
    assert raised.value.response["OriginalStatusCode"] == 400
    assert "'inputs'" in raised.value.response["OriginalMessage"]


def _tgi_validation_error(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error_type"] == "validation" and body["error"].startswith("Input validation error: "), body
    return body["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": LONG_TEXT, "parameters": {"max_new_tokens": 8}},
        {"inputs": LONG_TEXT, "parameters": {"max_new_tokens": 8}, "stream": True},
        {"inputs": "Say hi.", "parameters": {"max_new_tokens": N_CTX}},  # fits, but not with the answer asked for
        {"messages": [{"role": "user", "content": LONG_TEXT}], "max_tokens": 8},
        {"messages": [{"role": "user", "content": LONG_TEXT}], "max_tokens": 8, "stream": True},
    ],
    ids=["tgi", "tgi-stream", "tgi-max-new-tokens", "messages", "messages-stream"],
)
def test_container_refuses_what_does_not_fit_the_context_as_tgi_does(runtime, body):
    """TGI's 422 `inputs` tokens + `max_new_tokens` must be <= max_total_tokens, not llama.cpp's ValueError as a
    500 (or, streaming, a dropped connection); the container stays up."""
    message = _tgi_validation_error(httpx.post(f"{runtime.container_url}/invocations", json=body, timeout=60))
    assert f"`inputs` tokens + `max_new_tokens` must be <= {N_CTX}" in message
    assert httpx.get(f"{runtime.container_url}/ping").status_code == 200


def test_context_overflow_reaches_boto3_as_tgi_model_error(client):
    """SageMaker passes the container's own body on: ModelError, OriginalStatusCode 422, OriginalMessage the JSON."""
    with pytest.raises(client.exceptions.ModelError) as raised:
        client.invoke_endpoint(
            EndpointName=ENDPOINT,
            ContentType="application/json",
            Body=json.dumps({"inputs": LONG_TEXT, "parameters": {"max_new_tokens": 8}}),
        )
    assert raised.value.response["OriginalStatusCode"] == 422
    original = json.loads(raised.value.response["OriginalMessage"])
    assert original["error_type"] == "validation" and "max_new_tokens" in original["error"]


@pytest.mark.parametrize(
    "messages, fragment",
    [
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}], "text only"),
        ([{"role": "user", "content": "a \ud800 b"}], "unpaired surrogate"),
    ],
)
@pytest.mark.parametrize("path", ["/invocations", "/v1/chat/completions"])
def test_container_refuses_messages_no_text_model_can_take(runtime, messages, fragment, path):
    body = json.dumps({"messages": messages, "max_tokens": 2})  # json.dumps escapes the lone surrogate
    response = httpx.post(f"{runtime.container_url}{path}", content=body, headers={"content-type": "application/json"})
    assert fragment in _tgi_validation_error(response)


def test_container_takes_content_parts_and_null_content(runtime):
    """OpenAI's text parts and an assistant turn with null content were a TypeError / UndefinedError (500) in the
    chat template."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": " hi."}]},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "Again."},
    ]
    response = httpx.post(
        f"{runtime.container_url}/invocations", json={"messages": messages, "max_tokens": 2}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["completion_tokens"] >= 1


def test_container_answers_while_a_stream_generates(runtime):
    """Generation ran on the event loop: a request arriving during a stream waited for the model's lock there, so
    the container hung (even /ping) until the stream's client gave up."""
    body = {
        "inputs": "<|im_start|>user\nTell a story.<|im_end|>\n<|im_start|>assistant\n",
        "parameters": {"max_new_tokens": 40},
        "stream": True,
    }
    with httpx.stream("POST", f"{runtime.container_url}/invocations", json=body, timeout=60) as stream:
        lines = stream.iter_lines()  # kept: dropping it would close the connection
        assert next(lines).startswith("data:")
        assert httpx.get(f"{runtime.container_url}/ping", timeout=5).status_code == 200
        short = httpx.post(f"{runtime.container_url}/invocations", json=_tgi_body(), timeout=30)
        assert short.status_code == 200
        assert sum(1 for line in lines if line.startswith("data:")) >= 1


LONG_ANSWER = 600  # SmolLM2 writes all 600 tokens for this prompt: about 10 s here, so it is still going on a leave
STORY = "Write a long story about a dragon."
LONG_STREAMS = {
    "tgi": {
        "inputs": f"<|im_start|>user\n{STORY}<|im_end|>\n<|im_start|>assistant\n",
        "parameters": {"max_new_tokens": LONG_ANSWER},
        "stream": True,
    },
    "messages": {"messages": [{"role": "user", "content": STORY}], "max_tokens": LONG_ANSWER, "stream": True},
}
FREED_WITHIN_S = 3.0  # a short answer takes ~0.3 s; the abandoned generation alone would take ~10 s


@pytest.fixture
def no_gc():
    """The abandoned stream sat in a reference cycle: only a cyclic collection that happened to run freed the model.
    With the collector off, the test shows whether closing is deterministic, not whether the collector was lucky."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _post_and_leave(url: str, path: str, body: dict, until: bytes, count: int) -> None:
    """POST over a raw socket, read until `count` occurrences of `until` arrived, then close the connection."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data
        )
        received = b""
        while received.partition(b"\r\n\r\n")[2].count(until) < count:
            chunk = sock.recv(4096)
            assert chunk, f"the server closed the stream first: {received[:300]!r}"
            received += chunk
        assert received.startswith(b"HTTP/1.1 200"), received[:300]


def _seconds_to_answer_a_short_request(url: str) -> float:
    started = time.monotonic()
    try:
        response = httpx.post(f"{url}/invocations", json=_tgi_body(details=False), timeout=10)
    except httpx.TimeoutException:
        pytest.fail("the next request got no answer within 10 s: the abandoned stream still holds the model")
    assert response.status_code == 200, response.text
    return time.monotonic() - started


@pytest.mark.parametrize("body_format", ["tgi", "messages"])
def test_a_client_leaving_mid_stream_frees_the_model(runtime, no_gc, body_format):
    """A client that closed its connection mid-stream (Ctrl-C in a chat) left the generator suspended, holding the
    model's lock until the garbage collector happened to free it: the next request, from anyone, hung (45 s and
    more in QA's and our runs)."""
    _post_and_leave(runtime.container_url, "/invocations", LONG_STREAMS[body_format], b"data:", 3)
    elapsed = _seconds_to_answer_a_short_request(runtime.container_url)
    assert elapsed < FREED_WITHIN_S, f"the next request waited {elapsed:.1f}s for the abandoned stream"


def test_a_boto3_caller_closing_its_stream_frees_the_model(runtime, no_gc):
    """The same one level up: the runtime stand-in closes its container connection when its caller goes away."""
    client = boto3.client(
        "sagemaker-runtime",
        endpoint_url=runtime.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10),
    )
    response = client.invoke_endpoint_with_response_stream(
        EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(LONG_STREAMS["tgi"])
    )
    events = iter(response["Body"])
    assert "PayloadPart" in next(events) and "PayloadPart" in next(events)
    response["Body"].close()
    started = time.monotonic()
    try:
        answer = client.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(_tgi_body(details=False))
        )
    except ReadTimeoutError:
        pytest.fail("the next request got no answer within 10 s: the abandoned stream still holds the model")
    elapsed = time.monotonic() - started
    assert json.loads(answer["Body"].read())[0]["generated_text"]
    assert elapsed < FREED_WITHIN_S, f"the next request waited {elapsed:.1f}s for the abandoned stream"


def test_a_caller_leaving_the_runtime_mid_stream_frees_the_model(runtime, no_gc):
    _post_and_leave(
        runtime.url, f"/endpoints/{ENDPOINT}/invocations-response-stream", LONG_STREAMS["messages"], b":message-type", 3
    )
    elapsed = _seconds_to_answer_a_short_request(runtime.container_url)
    assert elapsed < FREED_WITHIN_S, f"the next request waited {elapsed:.1f}s for the abandoned stream"


@pytest.mark.parametrize("body_format", ["tgi", "messages"])
def test_backend_complete_and_stream_agree(runtime, body_format):
    strong = backend(runtime, body_format)
    completion = strong.complete(MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0)
    assert completion.text.strip()
    assert completion.model == ENDPOINT
    assert completion.prompt_tokens > 5 and 1 <= completion.completion_tokens <= MAX_TOKENS
    text, usage = _drain(strong.stream(MESSAGES, max_tokens=MAX_TOKENS, temperature=0.0))
    assert text
    assert text == completion.text  # greedy decoding: the same answer either way
    prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
    assert usage.finish_reason == completion.finish_reason
    assert prompt_tokens > 5 and completion_tokens == completion.completion_tokens
    if body_format == "messages":  # the container reports usage; the TGI stream carries no prompt count
        assert prompt_tokens == completion.prompt_tokens


@pytest.mark.parametrize("body_format", ["tgi", "messages"])
@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_prompt_over_the_context_is_rejected_input_not_strong_error(runtime, body_format, operation):
    """The container's 422 reaches the backend as ModelError (OriginalStatusCode 422): the input was refused, which
    is the caller's error, not the endpoint failing."""
    strong = backend(runtime, body_format)
    with pytest.raises(BackendError) as raised:
        if operation == "complete":
            strong.complete([{"role": "user", "content": LONG_TEXT}], max_tokens=MAX_TOKENS)
        else:
            list(strong.stream([{"role": "user", "content": LONG_TEXT}], max_tokens=MAX_TOKENS))
    assert (raised.value.cause, raised.value.status_code) == ("strong_rejected_input", 400)
    assert (
        f"rejected the input (422): Input validation error: `inputs` tokens + `max_new_tokens` must be <= {N_CTX}"
        in str(raised.value)
    )


@pytest.mark.parametrize(
    "status, cause",
    [
        (400, "strong_rejected_input"),
        (413, "strong_rejected_input"),
        (422, "strong_rejected_input"),
        (424, "strong_error"),
        (429, "strong_error"),
        (404, "strong_error"),
    ],
)
def test_only_statuses_that_refuse_the_input_are_rejected_input(runtime, faults, status, cause):
    """TGI's 429 (overloaded) and 424 (generation failed), a container's 404 (wrong route) are the endpoint's
    trouble: still strong_error, which the device falls back from."""
    faults(mode="model_error", status=status)
    with pytest.raises(BackendError) as raised:
        backend(runtime).complete(MESSAGES, max_tokens=MAX_TOKENS)
    assert raised.value.cause == cause
    assert "injected container failure" in str(raised.value)


def test_unknown_endpoint_through_backend(runtime):
    with pytest.raises(BackendError) as raised:
        backend(runtime, endpoint="no-such-endpoint").complete(MESSAGES, max_tokens=MAX_TOKENS)
    assert raised.value.cause == "strong_error"
    assert "ValidationError" in str(raised.value)


@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_latency_beyond_the_timeout_is_strong_timeout(runtime, faults, operation):
    faults(mode="latency", latency_s=3)
    strong = backend(runtime, timeout_s=1)
    with pytest.raises(BackendError) as raised:
        if operation == "complete":
            strong.complete(MESSAGES, max_tokens=MAX_TOKENS)
        else:
            list(strong.stream(MESSAGES, max_tokens=MAX_TOKENS))
    assert raised.value.cause == "strong_timeout"


def test_latency_within_the_timeout_still_answers(runtime, faults):
    faults(mode="latency", latency_s=0.3, remaining=1)
    assert backend(runtime, timeout_s=30).complete(MESSAGES, max_tokens=MAX_TOKENS).text.strip()


@pytest.mark.parametrize(
    "plan",
    [
        {"mode": "model_error", "status": 500},
        {"mode": "service_error", "status": 503},
        {"mode": "service_error", "status": 500},
    ],
)
@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_server_errors_are_strong_error(runtime, faults, plan, operation):
    faults(**plan)
    strong = backend(runtime)
    with pytest.raises(BackendError) as raised:
        if operation == "complete":
            strong.complete(MESSAGES, max_tokens=MAX_TOKENS)
        else:
            list(strong.stream(MESSAGES, max_tokens=MAX_TOKENS))
    assert raised.value.cause == "strong_error"


@pytest.mark.parametrize("mode", ["cut", "stream_error"])
def test_stream_broken_mid_way(runtime, faults, mode):
    faults(mode=mode, after_parts=1)
    strong = backend(runtime)
    received = []
    with pytest.raises(BackendError) as raised:
        for piece in strong.stream(MESSAGES, max_tokens=MAX_TOKENS):
            received.append(piece)
    assert raised.value.cause == "strong_stream_broken"
    assert received, "the first parts arrived before the break"


def test_stream_stalling_mid_way_is_strong_timeout(runtime, faults):
    faults(mode="stall", after_parts=1, latency_s=3)
    with pytest.raises(BackendError) as raised:
        list(backend(runtime, timeout_s=1).stream(MESSAGES, max_tokens=MAX_TOKENS))
    assert raised.value.cause == "strong_timeout"


def test_missing_credentials_is_strong_auth(runtime, monkeypatch, tmp_path):
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(BackendError) as raised:
        backend(runtime).complete(MESSAGES, max_tokens=MAX_TOKENS)
    assert raised.value.cause == "strong_auth"
    assert "AWS_ACCESS_KEY_ID" in str(raised.value)


def test_unreachable_runtime_is_strong_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    strong = SageMakerBackend(
        ENDPOINT, region="us-east-1", endpoint_url=f"http://127.0.0.1:{port}", timeout_s=2, connect_timeout_s=1
    )
    with pytest.raises(BackendError) as raised:
        strong.complete(MESSAGES, max_tokens=MAX_TOKENS)
    assert raised.value.cause == "strong_unreachable"


@pytest.mark.parametrize("body_format", ["tgi", "messages"])
def test_stop_strings_cut_the_answer_in_both_body_shapes(runtime, body_format):
    strong = backend(runtime, body_format)
    messages = [{"role": "user", "content": "Describe the sea in two sentences."}]
    free = strong.complete(messages, max_tokens=24).text
    words = free.split()
    assert len(words) > 6, free
    stop = words[4]  # greedy decoding: the same answer again, cut before its fifth word
    cut = strong.complete(messages, max_tokens=24, stop=[stop]).text
    assert stop not in cut and free.startswith(cut.rstrip()) and len(cut) < len(free)
    assert stop not in "".join(strong.stream(messages, max_tokens=24, stop=[stop]))


def _drain(stream) -> tuple[str, tuple[int, int]]:
    pieces = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as done:
            return "".join(pieces), done.value


def test_each_stream_returns_its_own_token_counts(runtime):
    """Two streams through one backend, interleaved: each returns its own token counts and finish reason."""
    shared = backend(runtime)
    messages = [{"role": "user", "content": "Describe the sea in two sentences."}]
    short = shared.stream(messages, max_tokens=3)
    long = shared.stream(messages, max_tokens=20)
    _, short_usage = _drain(short)
    _, long_usage = _drain(long)
    assert short_usage.completion_tokens <= 3 < long_usage.completion_tokens
    assert short_usage.finish_reason == "length"
    assert not hasattr(shared, "last_usage")
