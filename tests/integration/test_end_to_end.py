"""Device to cloud, every hop real: edge service -> cloud API (uvicorn) -> SageMaker runtime stand-in ->
llama.cpp strong model, and decision records -> SQLite on the device -> sync -> cloud API -> DynamoDB (moto server).

After the run, the cloud's /v1/usage must equal the device's own log: no record lost, none counted twice
(the device's strong calls carry x-decision-id, so the cloud does not log them a second time).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from edge_client.config import Settings
from edge_client.factory import build_service
from edge_client.sync import sync_decisions
from hybrid_router.backends.base import BackendError
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.usage import UsageSummary

PROMPTS = [
    "Say hello.",
    "What is 2 + 2?",
    "Prove that there are infinitely many primes.",
    "Write a Python function that merges two sorted lists.",
]


@pytest.fixture(scope="module")
def stack():
    from local_stack.stack import start_stack

    # moto keeps one in-memory backend per process: a table name of our own keeps other tests' stacks apart
    with start_stack("smollm2", n_threads=1, state_file=None, table_name=f"e2e-{uuid.uuid4().hex[:8]}") as running:
        yield running.info


def _ask(service, prompt: str, model: str = "router"):
    request = ChatCompletionRequest(model=model, messages=[{"role": "user", "content": prompt}], max_tokens=8)
    return service.complete(request)


def test_device_log_and_cloud_usage_agree(stack, tmp_path):
    settings = Settings(
        cloud_url=stack.api_url,
        api_key=stack.api_key,
        strong_share=0.5,
        data_dir=str(tmp_path),
        n_threads=1,
        tenant_id=stack.tenant,
        device_id=stack.device,
    )
    service = build_service(settings)
    answers = [_ask(service, prompt) for prompt in PROMPTS]
    answers.append(_ask(service, PROMPTS[0], model="strong"))
    answers.append(_ask(service, PROMPTS[1], model=service.weak_name))
    assert {answer.record.route for answer in answers} == {"weak", "strong"}
    assert all(answer.record.reason in ("routed", "forced") for answer in answers)

    report = sync_decisions(service.log, stack.api_url, api_key=stack.api_key)
    assert (report.accepted, report.duplicates) == (len(answers), 0)
    again = sync_decisions(service.log, stack.api_url, api_key=stack.api_key)
    assert again.accepted == 0 and service.log.pending_count() == 0

    device = UsageSummary.from_records(service.log.records())
    response = httpx.get(f"{stack.api_url}/v1/usage", headers={"x-api-key": stack.api_key}, timeout=30)
    assert response.status_code == 200
    cloud = UsageSummary.model_validate(response.json())
    assert cloud.totals.requests == device.totals.requests == len(answers)
    assert cloud.totals.strong == device.totals.strong
    assert cloud.totals.cost_usd == pytest.approx(device.totals.cost_usd, abs=1e-12)
    assert cloud.totals.strong_cost_usd == pytest.approx(device.totals.strong_cost_usd, abs=1e-12)
    assert cloud.totals.completion_tokens == device.totals.completion_tokens


def test_cloud_down_answers_locally_and_sync_catches_up_later(stack, tmp_path):
    settings = Settings(
        cloud_url="http://127.0.0.1:9",
        api_key=stack.api_key,
        threshold=0.0,
        data_dir=str(tmp_path),
        n_threads=1,
        strong_timeout_s=2.0,
        tenant_id=stack.tenant,
        device_id=stack.device,
    )
    service = build_service(settings)
    answer = _ask(service, "Explain general relativity.")
    assert answer.record.route == "weak"
    assert answer.record.reason == "fallback:strong_unreachable"
    assert service.log.pending_count() == 1

    report = sync_decisions(service.log, stack.api_url, api_key=stack.api_key)
    assert report.accepted == 1 and service.log.pending_count() == 0


LONG_PROMPT = " ".join(["word"] * 3000)  # one token a word: over the strong stand-in's 2048-token context


@pytest.mark.parametrize("strong_kind", ["cloud", "sagemaker"])
@pytest.mark.parametrize("stream", [False, True])
def test_prompt_the_strong_model_refuses_is_a_clear_error_not_a_local_fallback(stack, tmp_path, strong_kind, stream):
    """The strong endpoint refuses a prompt over its context (TGI's 422; the cloud's 400 strong_rejected_input).
    The request is wrong, not the cloud down: the device says so at once, and does not hand the prompt to its
    local model (smaller context still) as a fallback. One record, status error, the endpoint's reason."""
    settings = Settings(
        cloud_url=stack.api_url,
        api_key=stack.api_key,
        threshold=0.0,
        data_dir=str(tmp_path),
        n_threads=1,
        tenant_id=stack.tenant,
        device_id=stack.device,
        strong_kind=strong_kind,
        sagemaker_endpoint_name=stack.endpoint_name,
        sagemaker_endpoint_url=stack.sagemaker_runtime_url,
    )
    service = build_service(settings)
    cloud_requests = _cloud_requests(stack)
    request = ChatCompletionRequest(
        model="router", messages=[{"role": "user", "content": LONG_PROMPT}], max_tokens=8, stream=stream
    )
    with pytest.raises(BackendError) as raised:
        if stream:
            service.stream(request)
        else:
            service.complete(request)
    assert (raised.value.cause, raised.value.status_code) == ("strong_rejected_input", 400)
    assert "not retried on the local model" in str(raised.value)
    assert "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 2048" in str(raised.value)
    assert not service.weak.loaded, "the local model was tried"
    [record] = service.log.records()
    assert (record.route, record.reason, record.status, record.cost_usd) == ("strong", "routed", "error", 0)
    assert record.error.startswith("strong_rejected_input: ") and "Input validation error" in record.error
    assert _cloud_requests(stack) == cloud_requests, "the cloud logged the device's request a second time"


def _cloud_requests(stack) -> int:
    response = httpx.get(f"{stack.api_url}/v1/usage", headers={"x-api-key": stack.api_key}, timeout=30)
    return response.json()["totals"]["requests"]


def test_edge_server_answers_a_refused_prompt_as_the_callers_400(stack, tmp_path):
    from edge_client.server import create_app
    from local_stack.servers import ServerThread

    settings = Settings(
        cloud_url=stack.api_url,
        api_key=stack.api_key,
        threshold=0.0,
        data_dir=str(tmp_path),
        n_threads=1,
        tenant_id=stack.tenant,
        device_id=stack.device,
    )
    with ServerThread(create_app(build_service(settings)), name="edge") as edge:
        response = httpx.post(
            f"{edge.url}/v1/chat/completions",
            timeout=60,
            json={"model": "router", "messages": [{"role": "user", "content": LONG_PROMPT}]},
        )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "strong_rejected_input")
    assert "Input validation error" in error["message"]
