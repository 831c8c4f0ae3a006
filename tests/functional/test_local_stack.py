"""The one-command local stack: moto DynamoDB, the SageMaker stand-in with a real llama.cpp model, and the cloud
API under uvicorn, wired through the environment the Lambda functions get."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import httpx
import pytest

pytest.importorskip("llama_cpp")

from hybrid_router.backends.base import BackendError  # noqa: E402
from hybrid_router.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from hybrid_router.backends.sagemaker import SageMakerBackend  # noqa: E402
from local_stack.stack import start_stack  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, write_tiny_router) -> Path:
    """A small real router file (tests/fixtures/tiny_router.py), so the test needs no trained router."""
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    out = tmp_path_factory.mktemp("stack-router")
    write_tiny_router(out)
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory, router_dir):
    state_file = tmp_path_factory.mktemp("stack") / "local_stack.json"
    before = {
        k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL_DYNAMODB", "HYBRID_ROUTER_API_KEYS", "HYBRID_ROUTER_ROUTER")
    }
    with start_stack(
        os.environ.get("HYBRID_ROUTER_TEST_STRONG_MODEL", "smollm2"),
        n_ctx=1024,
        n_threads=1,
        state_file=state_file,
        router_path=router_dir,
    ) as running:
        yield running
    assert {k: os.environ.get(k) for k in before} == before, "stop() restores the environment"
    assert not state_file.exists(), "stop() removes its state file"


def test_state_file_has_the_connection_info(stack):
    info = json.loads(stack.state_file.read_text())
    assert info["api_url"] == stack.info.api_url and info["api_key"] == stack.info.api_key
    assert info["sagemaker_runtime_url"].startswith("http://127.0.0.1:")
    assert oct(stack.state_file.stat().st_mode & 0o777) == "0o600"


def test_dynamodb_table_exists(stack):
    client = boto3.client("dynamodb", endpoint_url=stack.info.dynamodb_url, region_name="us-east-1")
    table = client.describe_table(TableName=stack.info.table_name)["Table"]
    assert {k["AttributeName"] for k in table["KeySchema"]} == {"pk", "sk"}


def test_sagemaker_endpoint_answers_through_the_environment(stack):
    # No endpoint_url: boto3 finds the stand-in through AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, as in production.
    strong = SageMakerBackend(stack.info.endpoint_name, timeout_s=60)
    assert strong.complete([{"role": "user", "content": "Say hi."}], max_tokens=4).text.strip()


def test_cloud_api_serves_the_strong_model(stack):
    health = httpx.get(f"{stack.info.api_url}/health")
    assert health.status_code == 200
    client = OpenAICompatBackend(
        f"{stack.info.api_url}/v1",
        api_key=stack.info.api_key,
        model=stack.info.model_name,
        api_key_header="x-api-key",
        timeout_s=120,
    )
    completion = client.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert completion.text.strip()
    assert completion.completion_tokens >= 1
    # The API logged the decision in the stand-in DynamoDB: the caller's usage counts it.
    usage = httpx.get(f"{stack.info.api_url}/v1/usage", headers={"x-api-key": stack.info.api_key})
    assert usage.status_code == 200
    body = usage.json()
    assert (body["tenant_id"], body["device_id"]) == (stack.info.tenant, stack.info.device)
    assert body["by_route"]["strong"]["requests"] >= 1


def test_cloud_api_rejects_a_wrong_key(stack):
    client = OpenAICompatBackend(
        f"{stack.info.api_url}/v1",
        api_key="not-the-key",
        model=stack.info.model_name,
        api_key_header="x-api-key",
        timeout_s=30,
    )
    with pytest.raises(BackendError) as raised:
        client.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)
    assert raised.value.cause == "strong_auth"
