"""Device to cloud, every hop real: edge service -> cloud API (uvicorn) -> SageMaker runtime stand-in ->
llama.cpp strong model, and decision records -> SQLite on the device -> sync -> cloud API -> DynamoDB (moto server).

After the run, the cloud's /v1/usage must equal the device's own log: no record lost, none counted twice
(the device's strong calls carry x-decision-id, so the cloud does not log them a second time).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.usage import UsageSummary

from edge_client.config import Settings
from edge_client.factory import build_service
from edge_client.sync import sync_decisions

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
    settings = Settings(cloud_url=stack.api_url, api_key=stack.api_key, strong_share=0.5, data_dir=str(tmp_path),
                        n_threads=1, tenant_id=stack.tenant, device_id=stack.device)
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
    settings = Settings(cloud_url="http://127.0.0.1:9", api_key=stack.api_key, threshold=0.0,
                        data_dir=str(tmp_path), n_threads=1, strong_timeout_s=2.0,
                        tenant_id=stack.tenant, device_id=stack.device)
    service = build_service(settings)
    answer = _ask(service, "Explain general relativity.")
    assert answer.record.route == "weak"
    assert answer.record.reason == "fallback:strong_unreachable"
    assert service.log.pending_count() == 1

    report = sync_decisions(service.log, stack.api_url, api_key=stack.api_key)
    assert report.accepted == 1 and service.log.pending_count() == 0
