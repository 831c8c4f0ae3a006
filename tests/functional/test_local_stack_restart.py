"""The local stack across restarts: the API key and the DynamoDB tables persist in its data folder, so a running
device keeps its key and the cloud keeps what was synced (issue 14). In memory stays the default of start_stack()."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

pytest.importorskip("moto")

from local_stack.persistence import (
    KEY_FILE,
    SNAPSHOT_FILE,
    DynamoDBServer,
    TableSnapshots,  # noqa: E402
    lock_data_dir,
)

REPO = Path(__file__).resolve().parents[2]
MODEL = os.environ.get("HYBRID_ROUTER_TEST_STRONG_MODEL", "smollm2")
UPLOAD: dict[str, Any] = json.loads(json.loads((REPO / "tests/events/decisions_post.json").read_text())["body"])
DECISION_IDS = [record["decision_id"] for record in UPLOAD["records"]]
for _record in UPLOAD["records"]:  # recorded in 2024: now, so the stack's upload window takes them
    _record["created_at"] = datetime.now(UTC).isoformat()


@pytest.fixture(scope="module")
def router_dir(tmp_path_factory, write_tiny_router) -> Path:
    pytest.importorskip("llama_cpp")
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    out = tmp_path_factory.mktemp("restart-router")
    write_tiny_router(out)
    return out


def _upload(api_url: str, key: str) -> dict[str, Any]:
    response = httpx.post(f"{api_url}/v1/decisions", json=UPLOAD, headers={"x-api-key": key}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _usage(api_url: str, key: str) -> dict[str, Any]:
    response = httpx.get(f"{api_url}/v1/usage", headers={"x-api-key": key}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def test_restart_keeps_the_router_versions_and_the_active_one(tmp_path, router_dir):
    from hybrid_router.registry import RouterRegistry, S3Blobs
    from local_stack.stack import start_stack

    data = tmp_path / "data"
    options: dict[str, Any] = dict(
        api=False,
        n_ctx=1024,
        n_threads=1,
        data_dir=data,
        state_file=None,
        table_name=f"routers-{tmp_path.name}",
        routers_bucket=f"routers-{os.getpid()}",
    )
    with start_stack(MODEL, **options) as first:
        registry = RouterRegistry(S3Blobs(first.info.routers_bucket, region=first.info.region))
        registry.activate(registry.register(router_dir).ref)
    with start_stack(MODEL, **options) as second:
        registry = RouterRegistry(S3Blobs(second.info.routers_bucket, region=second.info.region))
        deployment = registry.deployment()
        assert deployment is not None and str(deployment.active) == "tiny-token-mean@0"
        folder = registry.fetch(deployment.active, tmp_path / "cache")  # every file checked against its manifest
        assert (folder / "router.onnx").read_bytes() == (router_dir / "router.onnx").read_bytes()
    with start_stack(MODEL, **{**options, "data_dir": None}) as in_memory:
        registry = RouterRegistry(S3Blobs(in_memory.info.routers_bucket, region=in_memory.info.region))
        assert registry.deployment() is None  # without a data folder nothing is kept: the bucket starts empty


def test_restart_keeps_the_key_the_decisions_and_the_feedback(tmp_path, router_dir):
    from local_stack.stack import start_stack

    data = tmp_path / "data"
    # A table name of its own: moto keeps an in-memory stack's tables for the rest of the process.
    options: dict[str, Any] = dict(
        n_ctx=1024, n_threads=1, router_path=router_dir, data_dir=data, table_name=f"restart-{tmp_path.name}"
    )
    with start_stack(MODEL, state_file=data / "local_stack.json", **options) as first:
        key, api_url = first.info.api_key, first.info.api_url
        assert (data / KEY_FILE).read_text().strip() == key
        assert oct((data / KEY_FILE).stat().st_mode & 0o777) == "0o600"
        assert _upload(api_url, key) == {"accepted": 2, "duplicates": 0, "failed": [], "charged": []}
        rating = {"decision_id": DECISION_IDS[0], "rating": 4, "scale": "stars", "comment": "kept?"}
        assert httpx.post(f"{api_url}/v1/feedback", json=rating, headers={"x-api-key": key}).status_code == 200
        usage = _usage(api_url, key)
        assert usage["totals"]["requests"] == 2

    with start_stack(MODEL, **options) as second:
        assert second.info.api_key == key, "the same key after a restart"
        assert _usage(second.info.api_url, key) == usage
        assert _upload(second.info.api_url, key) == {"accepted": 0, "duplicates": 2, "failed": [], "charged": []}
        assert _usage(second.info.api_url, key) == usage
        client = boto3.client("dynamodb", endpoint_url=second.info.dynamodb_url, region_name=second.info.region)
        pk = f"DEVICE#{second.info.tenant}#{second.info.device}"
        stored = client.get_item(
            TableName=second.info.table_name, Key={"pk": {"S": pk}, "sk": {"S": f"FEEDBACK#{DECISION_IDS[0]}"}}
        )
        assert stored["Item"]["comment"] == {"S": "kept?"}
        late = {"decision_id": DECISION_IDS[1], "rating": -1, "scale": "thumbs"}
        response = httpx.post(f"{second.info.api_url}/v1/feedback", json=late, headers={"x-api-key": key})
        assert response.status_code == 200, "a decision synced before the restart can still be rated"

    with start_stack(MODEL, api=False, api_key="explicit-key", **options) as third:
        assert third.info.api_key == "explicit-key", "an explicit key wins"
    assert (data / KEY_FILE).read_text().strip() == key, "and leaves the kept one alone"


def test_start_stack_without_a_data_dir_stays_in_memory(tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp")
    from local_stack.stack import start_stack

    monkeypatch.chdir(tmp_path)
    options: dict[str, Any] = dict(api=False, n_ctx=1024, n_threads=1)
    with start_stack(MODEL, table_name=f"memory-1-{tmp_path.name}", **options) as one:
        first_key = one.info.api_key
        assert one.info.data_dir is None
    with start_stack(MODEL, table_name=f"memory-2-{tmp_path.name}", **options) as two:
        assert two.info.api_key != first_key
    assert list(tmp_path.iterdir()) == []


def _start_process(data: Path, router: Path, ready: Path) -> tuple[subprocess.Popen, dict[str, Any]]:
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "local_stack",
            "--model",
            MODEL,
            "--port",
            "0",
            "--threads",
            "1",
            "--router",
            str(router),
            "--data-dir",
            str(data),
            "--state-file",
            str(data / "local_stack.json"),
            "--ready-file",
            str(ready),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            return process, json.loads(ready.read_text())
        except (OSError, ValueError):
            pass
        if process.poll() is not None:
            raise AssertionError(f"the stack exited with {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the stack was not ready within 300 s")
        time.sleep(0.2)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(30)


def test_kill_9_loses_nothing_saved_before_it(tmp_path, router_dir, processes):
    data, ready = tmp_path / "data", tmp_path / "ready.json"
    process, info = _start_process(data, router_dir, ready)
    processes.append(process)
    assert _upload(info["api_url"], info["api_key"])["accepted"] == 2
    usage = _usage(info["api_url"], info["api_key"])
    snapshot = data / SNAPSHOT_FILE
    deadline = time.monotonic() + 30
    while not (snapshot.is_file() and all(d in snapshot.read_text() for d in DECISION_IDS)):
        assert time.monotonic() < deadline, "no snapshot with the uploaded decisions within 30 s"
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(30)

    process, again = _start_process(data, router_dir, ready)
    processes.append(process)
    assert again["api_key"] == info["api_key"]
    assert _usage(again["api_url"], again["api_key"]) == usage
    assert _upload(again["api_url"], again["api_key"])["duplicates"] == 2
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0


def test_snapshot_keeps_numbers_and_binary_exactly(tmp_path):
    from hybrid_router.stores.dynamodb import create_table

    server = DynamoDBServer().start()
    try:
        client = boto3.client("dynamodb", endpoint_url=server.url, region_name="us-east-1")
        table = f"snapshot-{tmp_path.name}"[:200]
        create_table(client, table)
        item = {
            "pk": {"S": "DEVICE#t#d"},
            "sk": {"S": "DECISION#1"},
            "blob": {"B": b"\x00\xff\x80"},
            "blobs": {"BS": [b"a", b"\x01"]},
            "cost": {"N": "0.000000000000000000000000000000000001"},
            "big": {"N": "12345678901234567890123456789012345678"},
            "nested": {"M": {"list": {"L": [{"N": "3.14159265358979323846"}, {"NULL": True}, {"B": b"\x02"}]}}},
            "expires_at": {"N": "1"},
        }
        client.put_item(TableName=table, Item=item)
        snapshots = TableSnapshots(server, client, "us-east-1", [table], tmp_path)
        assert server.changed.is_set()
        assert snapshots.save() == 1
        saved_at = (tmp_path / SNAPSHOT_FILE).stat().st_mtime_ns
        snapshots.stop()
        assert (tmp_path / SNAPSHOT_FILE).stat().st_mtime_ns == saved_at, "nothing changed: nothing written"
        assert oct((tmp_path / SNAPSHOT_FILE).stat().st_mode & 0o777) == "0o600"

        client.delete_table(TableName=table)
        client.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2})
        create_table(client, table)
        assert TableSnapshots(server, client, "us-east-1", [table], tmp_path).restore() == 1
        assert client.scan(TableName=table)["Items"] == [item]
    finally:
        server.stop()


def test_a_data_folder_serves_one_stack_at_a_time(tmp_path):
    held = lock_data_dir(tmp_path)
    try:
        with pytest.raises(RuntimeError, match=f"pid {os.getpid()}"):
            lock_data_dir(tmp_path)
    finally:
        held.close()
    lock_data_dir(tmp_path).close()


def test_a_damaged_snapshot_stops_the_start_instead_of_being_overwritten(tmp_path):
    (tmp_path / SNAPSHOT_FILE).write_text('{"format": "hybrid-router-local-stack-dynamodb/1", "tables": ')
    with pytest.raises(RuntimeError, match="move the file away"):
        TableSnapshots(DynamoDBServer(), None, "us-east-1", ["t"], tmp_path)
    assert (tmp_path / SNAPSHOT_FILE).read_text().endswith('"tables": ')
