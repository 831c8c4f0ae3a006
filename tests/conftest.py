"""Shared fixtures: a real DynamoDB-speaking server (moto server mode) for the whole session.

dynamodb_endpoint      URL of the server (http://127.0.0.1:<free port>)
dynamodb_client        a boto3 DynamoDB client pointed at it (dummy credentials)
decision_table         a fresh decisions table (TABLE_SCHEMA) per test; yields its name
new_decision_table(client) -> name   create another fresh table
free_port() -> int
bench_script(name) -> module   bench/<name>.py loaded as a module (bench/ holds scripts, not a package)
write_tiny_router(out_dir) -> out_dir/router.onnx   a real, untrained router file (tests/fixtures/tiny_router.py)
fixed_backend(name, text) -> a model-free ChatBackend answering `text` (tests/fixtures/fixed_backend.py)
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from types import ModuleType

import pytest

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


BENCH = Path(__file__).resolve().parents[1] / "bench"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _load_script(name: str, path: Path) -> ModuleType:
    if name not in sys.modules:  # one module object per script, shared by every test that asks
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def bench_script() -> Callable[[str], ModuleType]:
    def load(name: str) -> ModuleType:
        return _load_script(name, BENCH / f"{name}.py")

    return load


@pytest.fixture(scope="session")
def write_tiny_router() -> Callable[[str | Path], Path]:
    """write_tiny_router(out_dir) writes out_dir/router.onnx + tokenizer.json and returns the .onnx path: a real
    router file whose score is a fixed function of the token ids (tests/fixtures/tiny_router.py; needs onnx)."""
    return _load_script("tiny_router", FIXTURES / "tiny_router.py").write_tiny_router


@pytest.fixture(scope="session")
def fixed_backend() -> Callable[..., object]:
    return _load_script("fixed_backend", FIXTURES / "fixed_backend.py").FixedBackend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s}s")


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    """A moto server in its own process (real HTTP, the DynamoDB wire protocol), stopped at session end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def dynamodb_client(dynamodb_endpoint: str):
    from hybrid_router.stores.dynamodb import make_client

    return make_client(endpoint_url=dynamodb_endpoint, region="us-east-1")


def new_decision_table(client) -> str:
    from hybrid_router.stores.dynamodb import create_table

    name = f"decisions-{uuid.uuid4().hex[:12]}"
    create_table(client, name)
    return name


@pytest.fixture
def decision_table(dynamodb_client) -> Iterator[str]:
    name = new_decision_table(dynamodb_client)
    yield name
    dynamodb_client.delete_table(TableName=name)


@pytest.fixture
def make_decision():
    """A factory for realistic DecisionRecords: make_decision(route="strong", day="2025-01-02", **fields)."""
    import random
    from datetime import datetime

    from hybrid_router.decision import DecisionRecord
    from hybrid_router.ulid import new_ulid

    rng = random.Random(7)

    def make(route: str = "weak", at: datetime | str | None = None, **fields) -> DecisionRecord:
        if isinstance(at, str):
            at = datetime.fromisoformat(at.replace("Z", "+00:00"))
        at = at or datetime.now(UTC)
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        prompt_tokens, completion_tokens = rng.randint(5, 400), rng.randint(1, 600)
        strong_cost = round(prompt_tokens * 2.5e-6 + completion_tokens * 1e-5, 9)
        values = dict(
            decision_id=new_ulid(int(at.timestamp() * 1000)),
            created_at=at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            router_id="mf",
            router_version="test",
            score=round(rng.random(), 6),
            threshold=0.5,
            route=route,
            weak_model="smollm2-135m",
            strong_model="llama-3-70b",
            model_used="llama-3-70b" if route == "strong" else "smollm2-135m",
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            router_latency_ms=round(rng.uniform(0.3, 3.0), 3),
            generation_latency_ms=round(rng.uniform(50, 3000), 1),
            cost_usd=strong_cost if route == "strong" else round(rng.uniform(0, 2e-6), 10),
            strong_cost_usd=strong_cost,
            energy_wh=0.0 if route == "strong" else round(rng.uniform(0.001, 0.05), 6),
        )
        values.update(fields)
        return DecisionRecord(**values)

    return make
