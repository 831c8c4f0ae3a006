"""Each serving container's recorded contract, replayed through boto3's real sagemaker-runtime client and the
SageMaker runtime stand-in into SageMakerBackend: what the backend sends (body shape, stop parameter, served model
name, InferenceComponentName) and what it makes of every answer (text, finish reason, usage, and each error shape,
including DJL/LMI's failed generation answered with HTTP 200, which must never come out as an answer).

The recordings are in tests/fixtures/containers/<container>.json, each written from the container's public source
or documentation, cited in the file."""

from __future__ import annotations

from typing import Any

import boto3
import httpx
import pytest
from test_api_support import table, tiny_router_dir  # noqa: F401

from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.backends.base import BackendError
from hybrid_router.backends.sagemaker import SageMakerBackend
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from local_stack.sagemaker_runtime import create_runtime_app
from local_stack.servers import ServerThread
from tests.fixtures.replay_container import create_replay_app, load_cases

ENDPOINT = "strong-replay"
IC_ENDPOINT = "strong-components"
COMPONENT = "llama-3-1-8b-ic"
MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]
MAX_TOKENS = 16
ROUTER_STRONG_MODEL = "gpt-4-1106-preview"  # what decision records call the strong model: never sent as "model"

CASES = [(container, case) for container in ("tgi", "lmi", "vllm") for case in load_cases(container)]


@pytest.fixture(scope="module")
def replay():
    app = create_replay_app()
    with ServerThread(app, name="replay-container") as container:
        endpoints = {ENDPOINT: container.url, IC_ENDPOINT: {COMPONENT: container.url}}
        with ServerThread(create_runtime_app(endpoints), log_level="critical", name="runtime") as runtime:
            yield app, runtime.url


def _backend(runtime_url: str, container: str, call: dict[str, Any], **extra: Any) -> SageMakerBackend:
    return SageMakerBackend(
        extra.pop("endpoint", ENDPOINT),
        region="us-east-1",
        endpoint_url=runtime_url,
        container=container,
        body_format=call.get("body_format", "messages"),
        chat_template=call.get("chat_template", "chatml"),
        served_model_name=call.get("served_model_name"),
        model_name=ROUTER_STRONG_MODEL,
        timeout_s=10,
        connect_timeout_s=2,
        **extra,
    )


def _run(backend: SageMakerBackend, call: dict[str, Any]) -> tuple[str, str, int, int]:
    kwargs = {"max_tokens": MAX_TOKENS, "temperature": 0.0, "stop": call.get("stop")}
    if call["operation"] == "complete":
        done = backend.complete(MESSAGES, **kwargs)
        return done.text, done.finish_reason, done.prompt_tokens, done.completion_tokens
    stream = backend.stream(MESSAGES, **kwargs)
    pieces: list[str] = []
    while True:
        try:
            pieces.append(next(stream))
        except StopIteration as end:
            result = end.value
            return "".join(pieces), result.finish_reason, result.prompt_tokens, result.completion_tokens


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in expected.items())
    return actual == expected


@pytest.mark.parametrize(("container", "case"), CASES, ids=[f"{c}-{case['name']}" for c, case in CASES])
def test_recorded_contract(replay, container: str, case: dict[str, Any]) -> None:
    app, runtime_url = replay
    app.state.case = case
    app.state.requests.clear()
    backend = _backend(runtime_url, container, case["call"])
    expect = case["expect"]
    if "error" in expect:
        with pytest.raises(BackendError) as failed:
            _run(backend, case["call"])
        error = failed.value
        assert error.cause == expect["error"]["cause"], str(error)
        if "status_code" in expect["error"]:
            assert error.status_code == expect["error"]["status_code"], str(error)
        assert expect["error"]["message_contains"] in str(error)
    else:
        text, finish, prompt_tokens, completion_tokens = _run(backend, case["call"])
        assert (text, finish) == (expect["text"], expect["finish_reason"])
        assert completion_tokens == expect["completion_tokens"]
        if "prompt_tokens" in expect:
            assert prompt_tokens == expect["prompt_tokens"]
    [sent] = app.state.requests
    assert _contains(sent, case.get("request", {})), sent
    for key in case.get("request_absent", []):
        assert key not in sent, (key, sent)
    for key in case.get("request_absent_parameters", []):
        assert key not in sent.get("parameters", {}), (key, sent)
    assert sent.get("model") == case["call"].get("served_model_name")  # the container's name for it, or none


@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_the_router_model_name_is_never_sent_as_the_served_model(replay, operation: str) -> None:
    app, runtime_url = replay
    app.state.case = next(case for case in load_cases("tgi") if case["name"].startswith(f"messages_{operation}"))
    app.state.requests.clear()
    _run(_backend(runtime_url, "tgi", {"operation": operation}), {"operation": operation})
    assert "model" not in app.state.requests[-1]


@pytest.mark.parametrize("operation", ["complete", "stream"])
def test_inference_component_is_named_on_every_call(replay, operation: str) -> None:
    app, runtime_url = replay
    case = next(case for case in load_cases("tgi") if case["name"].startswith(f"messages_{operation}"))
    app.state.case = case
    call = case["call"]
    backend = _backend(runtime_url, "tgi", call, endpoint=IC_ENDPOINT, inference_component=COMPONENT)
    assert _run(backend, call)[0] == case["expect"]["text"]
    without = _backend(runtime_url, "tgi", call, endpoint=IC_ENDPOINT)
    with pytest.raises(BackendError, match="Inference Component Name header is required"):
        _run(without, call)


def test_the_stand_in_refuses_what_sagemaker_refuses(replay) -> None:
    _, runtime_url = replay
    client = boto3.client("sagemaker-runtime", endpoint_url=runtime_url, region_name="us-east-1")
    with pytest.raises(client.exceptions.ValidationError, match="Inference Component Name header is required"):
        client.invoke_endpoint(EndpointName=IC_ENDPOINT, ContentType="application/json", Body=b"{}")


def test_vllm_takes_no_generate_body() -> None:
    with pytest.raises(ValueError, match="vllm container does not take the 'tgi' body"):
        SageMakerBackend(ENDPOINT, region="us-east-1", container="vllm", body_format="tgi")
    with pytest.raises(ValueError, match="unknown SageMaker container"):
        SageMakerBackend(ENDPOINT, region="us-east-1", container="triton")  # type: ignore[arg-type]


def _case(container: str, name: str) -> dict[str, Any]:
    return next(case for case in load_cases(container) if case["name"] == name)


def test_a_failed_generation_answered_200_is_recorded_as_an_error_never_billed(
    replay, tiny_router_dir, table, dynamodb_endpoint, dynamodb_client
) -> None:
    """Through the cloud API: LMI's HTTP 200 with finish_reason "error" is a 502 and an error record costing 0,
    where the same endpoint's real answer is served and billed."""
    app, runtime_url = replay
    settings = ApiSettings(
        router_path=str(tiny_router_dir),
        table_name=table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map("key-a=acme/device-a"),
        strong_endpoint_name=ENDPOINT,
        sagemaker_endpoint_url=runtime_url,
        sagemaker_timeout_s=10,
        strong_model_name="strong-model",
        strong_container="lmi",
        sagemaker_body_format="messages",
    )
    body = {"model": "strong-model", "messages": MESSAGES, "max_tokens": MAX_TOKENS}
    with ServerThread(create_app(settings), name="cloud-api") as server:
        with httpx.Client(base_url=server.url, headers={"x-api-key": "key-a"}, timeout=60) as client:
            app.state.case = _case("lmi", "chat_error_as_http_200")
            failed = client.post("/v1/chat/completions", json=body)
            app.state.case = _case("lmi", "chat_complete")
            served = client.post("/v1/chat/completions", json=body)
    assert failed.status_code == 502 and failed.json()["error"]["code"] == "strong_error", failed.text
    assert served.status_code == 200 and served.json()["choices"][0]["message"]["content"].startswith("The capital")
    records = {
        r.decision_id: r
        for r in DynamoDecisionStore(table, client=dynamodb_client).records_for_device("acme", "device-a")
    }
    assert len(records) == 2
    error = next(r for r in records.values() if r.status == "error")
    answer = next(r for r in records.values() if r.status == "ok")
    assert error.cost_usd == 0 and error.completion_tokens == 0 and "finish_reason: error" in (error.error or "")
    assert answer.cost_usd > 0 and answer.completion_tokens == 8
