"""kill -9 of the device server mid-stream: the decision id the client already holds exists in the log; mid plain
request: the client holds no id, and no record is left of an answer nobody received."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from hybrid_router.pipeline import UNFINISHED
from hybrid_router.stores.sqlite_log import DecisionLog

from tests.conftest import free_port, wait_for_port

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp")


def test_a_stream_killed_mid_answer_leaves_its_record(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update({"HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"), "HYBRID_ROUTER_DATA_DIR": str(tmp_path),
                "XDG_CACHE_HOME": str(tmp_path / "cache"), "HYBRID_ROUTER_N_THREADS": "1"})
    server = subprocess.Popen([sys.executable, "-m", "edge_client.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout_s=60, process=server)
        body = {"model": "smollm2-135m-instruct", "stream": True, "max_tokens": 600,
                "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60) as response:
            assert response.status_code == 200
            decision_id = response.headers["x-hybrid-router-decision-id"]
            seen = 0
            for line in response.iter_lines():
                seen += line.startswith("data: {")
                if seen >= 5:
                    os.kill(server.pid, signal.SIGKILL)
                    break
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    log = DecisionLog(tmp_path / "decisions.sqlite3")  # opened by another process: the server's pid is dead
    record = log.get(decision_id)
    assert record is not None, "the decision the client held is missing"
    assert (record.status, record.error) == ("error", UNFINISHED)
    assert log.count() == 1 and log.pending_count() == 1  # the dead server's open record is final and will sync


def test_a_plain_request_killed_mid_answer_delivered_nothing_and_holds_no_id(tmp_path: Path) -> None:
    """A plain (not streamed) answer is recorded when it is complete: the client gets its decision id only with
    the answer. Killed mid-generation, the client sees the connection drop, holds no id, and the log holds no
    record of an answer nobody received (nothing was delivered; a local answer costs nothing)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update({"HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"), "HYBRID_ROUTER_DATA_DIR": str(tmp_path),
                "XDG_CACHE_HOME": str(tmp_path / "cache"), "HYBRID_ROUTER_N_THREADS": "1"})
    server = subprocess.Popen([sys.executable, "-m", "edge_client.cli", "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    outcome: dict[str, object] = {}

    def ask() -> None:
        body = {"model": "smollm2-135m-instruct", "max_tokens": 600,
                "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
        try:
            outcome["response"] = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60)
        except httpx.TransportError as exc:
            outcome["error"] = exc

    try:
        wait_for_port(port, timeout_s=60, process=server)
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).raise_for_status()
        client = threading.Thread(target=ask)
        client.start()
        time.sleep(2.0)  # generating: 600 tokens take far longer on one thread
        assert "response" not in outcome
        os.kill(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
        client.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    assert isinstance(outcome.get("error"), httpx.TransportError), outcome
    log = DecisionLog(tmp_path / "decisions.sqlite3")
    assert log.count() == 0 and log.pending_count() == 0
