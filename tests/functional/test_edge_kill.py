"""kill -9 of the device server mid-stream and mid-request.

Mid-stream the client already holds a decision id, so that record exists in the log (closed as unfinished). A plain
request killed before its answer gave the client nothing, so nothing is owed: the log holds no record of it, stays
sound, and the restarted server logs its next answer once."""

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


def _serve(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(
        {
            "HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"),
            "HYBRID_ROUTER_DATA_DIR": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "HYBRID_ROUTER_N_THREADS": "1",
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "edge_client.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_port(port, timeout_s=60, process=server)
    return server


def _body(stream: bool, max_tokens: int) -> dict:
    return {
        "model": "smollm2-135m-instruct",
        "stream": stream,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Write a very long story about a dragon."}],
    }


def test_a_stream_killed_mid_answer_leaves_its_record(tmp_path: Path) -> None:
    port = free_port()
    server = _serve(tmp_path, port)
    try:
        body = _body(True, 600)
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


def test_a_plain_request_killed_mid_answer_owes_nothing_and_the_restart_logs_once(tmp_path: Path) -> None:
    port = free_port()
    server = _serve(tmp_path, port)
    try:
        with httpx.Client(timeout=60) as http:
            seen: list[str] = []
            pending = threading.Thread(target=_ask, args=(http, port, seen), daemon=True)
            pending.start()
            log_path = tmp_path / "decisions.sqlite3"
            time.sleep(1.5)  # routed and generating: 600 tokens take far longer on one thread
            os.kill(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            pending.join(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == -signal.SIGKILL
    assert seen == ["no answer"], seen  # the client saw its connection end, not an answer
    if log_path.exists():
        with DecisionLog(log_path) as log:
            assert log.count() == 0
    restarted = _serve(tmp_path, port)
    try:
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=_body(False, 8), timeout=120)
        assert answer.status_code == 200, answer.text
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    with DecisionLog(log_path) as log:
        assert log.count() == 1 and log.get(answer.headers["x-hybrid-router-decision-id"]) is not None


def _ask(http: httpx.Client, port: int, seen: list[str]) -> None:
    try:
        response = http.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=_body(False, 600))
        seen.append(f"answer {response.status_code}")
    except httpx.TransportError:
        seen.append("no answer")
