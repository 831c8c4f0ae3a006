"""Shared fixtures and helpers for the cloud API tests (no tests here).

Real parts only: a tiny but real router file (onnxruntime + tokenizer), moto's DynamoDB server (tests/conftest.py),
the SageMaker runtime stand-in in front of a real llama.cpp model (local_stack), uvicorn, httpx.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "tests" / "events"
STRONG_ENDPOINT = "hybrid-router-strong"


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def tiny_router_dir(tmp_path_factory, write_tiny_router) -> Path:
    """tests/fixtures/tiny_router.py: a real router.onnx + tokenizer.json whose score is a fixed function of token ids."""
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    out = tmp_path_factory.mktemp("api-router")
    write_tiny_router(out)
    return out


@pytest.fixture(scope="session")
def sagemaker_stand_in() -> Iterator[Any]:
    """local_stack's SageMaker runtime stand-in + BYOC container with SmolLM2-135M (llama.cpp), no API, no moto."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (the stand-in strong model needs it)")
    from local_stack.container import create_container_app
    from local_stack.model import LlamaTextModel
    from local_stack.sagemaker_runtime import create_runtime_app
    from local_stack.servers import ServerThread
    from local_stack.weights import resolve_model

    model = LlamaTextModel(resolve_model("smollm2"), n_ctx=1024, n_threads=1)
    container = ServerThread(create_container_app(model), name="container").start()
    runtime = ServerThread(create_runtime_app({STRONG_ENDPOINT: container.url}), name="runtime").start()
    runtime.model_name = model.name  # type: ignore[attr-defined]
    try:
        yield runtime
    finally:
        runtime.stop()
        container.stop()


@pytest.fixture
def faults(sagemaker_stand_in) -> Iterator[Any]:
    """set(**FaultPlan) on the stand-in; cleared after the test."""

    def set_faults(**plan: Any) -> None:
        httpx.post(f"{sagemaker_stand_in.url}/_stand_in/faults", json=plan).raise_for_status()

    yield set_faults
    httpx.delete(f"{sagemaker_stand_in.url}/_stand_in/faults").raise_for_status()


@pytest.fixture
def table(dynamodb_client) -> str:
    from hybrid_router.stores.dynamodb import create_table

    name = f"api-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb_client, name)
    return name


class ThrottlingDynamoDB(BaseHTTPRequestHandler):
    """Speaks DynamoDB's wire protocol and answers every call with ProvisionedThroughputExceededException."""

    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.lock:
            type(self).calls += 1
        body = json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "message": "The level of configured provisioned throughput for the table was exceeded.",
            }
        )
        self.send_response(400)
        self.send_header("content-type", "application/x-amz-json-1.0")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def throttling_dynamodb() -> Iterator[str]:
    ThrottlingDynamoDB.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), ThrottlingDynamoDB)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error
