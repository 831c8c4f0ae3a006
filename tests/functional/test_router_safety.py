"""Router files from the registry cannot harm a device: a manifest naming paths outside the version's folder is
refused, a file larger than its manifest says stops downloading at that size, a router that is not a router never
becomes active, and one that cannot load (put in place behind the CLI's back) leaves the device routing with the
last good router, saying so. A running `serve` follows `routers use` and experiments without a restart.

Real parts: moto's S3 and DynamoDB over HTTP, the cloud API under uvicorn, the `hybrid-router` CLI (in this process,
and `serve` in a child process), onnxruntime on real router files (the tiny test router)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_client.cli import main as cli
from edge_client.config import Settings
from edge_client.doctor import check_router
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.registry import RouterRef, RouterRegistry, S3Blobs
from hybrid_router.stores.sqlite_log import DecisionLog
from local_stack.servers import ServerThread
from local_stack.stack import create_bucket

pytestmark = pytest.mark.slow
pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")

REPO = Path(__file__).resolve().parents[2]
KEY = "key-router-safety"
PROMPT = "Prove that there are infinitely many primes."
V1, V2, GARBAGE = "tiny-token-mean@1", "tiny-token-mean@2", "garbage@1"


@pytest.fixture(scope="module")
def routers(tmp_path_factory, write_tiny_router) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("routers")
    return {
        "1": write_tiny_router(base / "v1", version="1").parent,
        "2": write_tiny_router(base / "v2", version="2", centre=1000.0).parent,
    }


@pytest.fixture
def cloud(dynamodb_endpoint, decision_table, routers, tmp_path, monkeypatch, fixed_backend) -> Iterator[dict]:
    """The cloud API over a moto bucket holding tiny-token-mean@1 (active) and @2, and a decision table."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dynamodb_endpoint)
    bucket = f"routers-{uuid.uuid4().hex[:12]}"
    create_bucket(dynamodb_endpoint, "us-east-1", bucket)
    registry = RouterRegistry(S3Blobs(bucket, region="us-east-1"))
    v1 = registry.register(routers["1"])
    registry.register(routers["2"])
    registry.activate(v1.ref)
    settings = ApiSettings(
        routers_bucket=bucket,
        router_refresh_s=0,
        router_cache_dir=str(tmp_path / "cloud-cache"),
        table_name=decision_table,
        dynamodb_endpoint_url=dynamodb_endpoint,
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/dev"),
    )
    server = ServerThread(create_app(settings, strong_backend=fixed_backend("strong", "a strong answer")), name="api")
    server.start()
    try:
        yield {"url": server.url, "bucket": bucket, "registry": registry, "blobs": registry.blobs}
    finally:
        server.stop()


@pytest.fixture
def device(cloud, tmp_path, monkeypatch) -> dict[str, str]:
    """The device's settings as environment variables (for the CLI here and `serve` in a child process)."""
    for name in [n for n in os.environ if n.startswith("HYBRID_ROUTER_")]:
        monkeypatch.delenv(name)
    env = {
        "HYBRID_ROUTER_CONFIG": str(tmp_path / "none.toml"),
        "HYBRID_ROUTER_DATA_DIR": str(tmp_path / "device"),
        "HYBRID_ROUTER_CLOUD_URL": cloud["url"],
        "HYBRID_ROUTER_API_KEY": KEY,
        "HYBRID_ROUTER_TENANT_ID": "acme",
        "HYBRID_ROUTER_DEVICE_ID": "dev",
        "HYBRID_ROUTER_MAX_TOKENS": "4",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def run(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def put_version(blobs: S3Blobs, router_id: str, files: dict[str, bytes], names: dict[str, str] | None = None) -> None:
    """Writes a version into the bucket by hand, as whoever can write the bucket could: its files, and a manifest
    whose checksums match them (`names` maps a file to the name the manifest gives it)."""
    names = names or {}
    entries = {}
    for name, data in files.items():
        blobs.put(f"routers/{router_id}/1/{name}", data)
        entries[names.get(name, name)] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    manifest = {
        "router_id": router_id,
        "version": "1",
        "kind": "tiny",
        "strong_model": "s",
        "weak_model": "w",
        "default_threshold": 0.5,
        "files": entries,
    }
    blobs.put(f"routers/{router_id}/1/manifest.json", json.dumps(manifest).encode())


def garbage_files(routers: dict[str, Path]) -> dict[str, bytes]:
    return {
        "router.onnx": b"this is not an ONNX model\n" * 40,
        "tokenizer.json": (routers["1"] / "tokenizer.json").read_bytes(),
    }


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# item 3: router files cannot leave their folder


@pytest.mark.parametrize("where", ["relative", "absolute"])
def test_a_manifest_naming_a_path_outside_is_refused(cloud, device, tmp_path, capsys, where) -> None:
    target = tmp_path / "outside" / "pwned.txt"
    target.parent.mkdir()
    name = "../../outside/pwned.txt" if where == "relative" else str(target)
    put_version(cloud["blobs"], "evil", {"router.onnx": b"pwned\n"}, names={"router.onnx": name})
    code, out, err = run(capsys, "routers", "pull", "evil@1")
    assert code == 1 and "sha256 checked" not in out
    assert "plain name" in err, err
    assert not target.exists() and not Path("/outside/pwned.txt").exists()
    assert [p.name for p in files_under(tmp_path / "device")] == []
    listed = httpx.get(f"{cloud['url']}/v1/routers/evil/versions/1", headers={"x-api-key": KEY}, timeout=30)
    assert listed.status_code == 503 and "plain name" in listed.json()["error"]["message"]


def test_a_file_larger_than_its_manifest_stops_at_the_declared_size(cloud, device, tmp_path, capsys) -> None:
    """A 32 MB router.onnx whose manifest says 10 bytes (with the sha256 of its first 10): the device asks for 11
    bytes, refuses the file and keeps nothing; the cloud's own fetch stops the same way."""
    big = b"\0" * (32 << 20)
    put_version(cloud["blobs"], "big", {"router.onnx": big[:10]})
    cloud["blobs"].put("routers/big/1/router.onnx", big)
    started = time.perf_counter()
    code, _, err = run(capsys, "routers", "pull", "big@1")
    assert code == 1 and "larger than the 10 bytes its manifest declares" in err, err
    assert time.perf_counter() - started < 10
    assert files_under(tmp_path / "device") == []
    assert sum(len(b) for b in cloud["blobs"].read("routers/big/1/router.onnx", 10)) == 11  # a ranged GET


# item 4: a bad router cannot brick a device


def test_routers_use_refuses_a_router_that_does_not_load(cloud, device, routers, capsys) -> None:
    put_version(cloud["blobs"], "garbage", garbage_files(routers))
    assert run(capsys, "routers", "pull")[0] == 0  # follows the cloud: tiny-token-mean@1, proven in a child
    code, out, _ = run(capsys, "routers", "pull", GARBAGE)
    assert code == 0 and "sha256 checked" in out  # the checksums match: only loading it tells
    code, _, err = run(capsys, "routers", "use", GARBAGE)
    assert code == 1
    assert f"router {GARBAGE} does not load" in err and f"keeps routing with {V1}" in " ".join(err.split()), err
    code, out, _ = run(capsys, "routers", "list", "--json")
    assert json.loads(out)["deployment"]["active"] == {"router_id": "tiny-token-mean", "version": "1"}
    code, out, err = run(capsys, "route", "--json", PROMPT)
    assert code == 0 and json.loads(out)["router_version"] == "1" and "warning" not in err
    code, _, err = run(capsys, "experiments", "start", "ab-bad", "--candidate", GARBAGE, "--mode", "ab")
    assert code == 1 and "does not load" in err
    cloud["registry"].activate(RouterRef(router_id="garbage", version="1"))  # the cloud names it: not followed
    code, _, err = run(capsys, "routers", "pull")
    assert code == 1 and "does not load" in err and f"keeps routing with {V1}" in " ".join(err.split()), err
    assert json.loads(run(capsys, "route", "--json", PROMPT)[1])["router_version"] == "1"


def make_active_behind_the_clis_back(data_dir: Path, router_id: str, version: str) -> None:
    path = data_dir / "routers" / "deployment.json"
    deployment = json.loads(path.read_text())
    deployment["active"] = {"router_id": router_id, "version": version}
    deployment["experiment"] = None
    path.write_text(json.dumps(deployment))


def start_serve(env: dict[str, str], tmp_path: Path, **extra: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    child_env.update(env, OMP_NUM_THREADS="1", **extra)
    log = open(tmp_path / f"serve-{port}.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_client.cli", "serve", "--lazy", "--port", str(port)],
        env=child_env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        assert process.poll() is None, (tmp_path / f"serve-{port}.log").read_text()
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def chat(url: str, model: str = "router", **extra: object) -> dict:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 4, **extra},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_router_broken_behind_the_clis_back_leaves_the_device_routing(
    cloud, device, routers, tmp_path, capsys
) -> None:
    """The deployment names a pulled version that is not a router (and, second, the active version's file is
    overwritten): `route`, `chat` and `serve` go on with the last good router and say so, as does `doctor`."""
    data_dir = tmp_path / "device"
    put_version(cloud["blobs"], "garbage", garbage_files(routers))
    assert run(capsys, "routers", "pull")[0] == 0
    assert run(capsys, "routers", "pull", GARBAGE)[0] == 0
    make_active_behind_the_clis_back(data_dir, "garbage", "1")

    code, out, err = run(capsys, "route", "--json", PROMPT)
    assert code == 0, err
    assert (json.loads(out)["router_id"], json.loads(out)["router_version"]) == ("tiny-token-mean", "1")
    assert f"{GARBAGE} cannot be loaded" in err and f"routing with {V1}" in err, err
    code, out, err = run(capsys, "chat", "--model", "strong", "hi")  # a forced model: answered by the cloud
    assert code == 0 and "a strong answer" in out, err
    doctor = check_router(Settings(data_dir=str(data_dir)))
    assert doctor.status == "fail" and f"{GARBAGE} cannot be loaded" in doctor.detail and V1 in doctor.detail

    process, url = start_serve(device, tmp_path, HYBRID_ROUTER_THRESHOLD="0.0")
    try:
        health = httpx.get(f"{url}/health", timeout=10).json()
        routed, forced = chat(url), chat(url, model="strong", cache=False)  # not the routed answer, cached
    finally:
        stop(process)
    assert health["status"] == "degraded", health
    assert health["router"]["wanted"] == GARBAGE and health["router"]["version"] == "1"
    assert "does not load" in health["router"]["problem"]
    assert routed["routing"]["router_version"] == "1" and routed["routing"]["route"] == "strong"
    assert forced["routing"]["reason"] == "forced"
    assert "ROUTER NOT LOADED" in (tmp_path / f"serve-{url.rsplit(':', 1)[1]}.log").read_text()

    # the active version's own file overwritten with garbage (its checksum no longer matches)
    assert run(capsys, "routers", "pull", V2)[0] == 0
    assert run(capsys, "routers", "use", V2)[0] == 0
    onnx_file = next((data_dir / "routers").rglob("tiny-token-mean/2/router.onnx"))
    onnx_file.write_bytes(garbage_files(routers)["router.onnx"])
    code, out, err = run(capsys, "route", "--json", PROMPT)
    assert code == 0 and json.loads(out)["router_version"] == "1" and f"{V2} cannot be loaded" in err, err


# item 5: live changes without restarts


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_a_running_server_follows_routers_use_and_experiments(cloud, device, routers, tmp_path, capsys) -> None:
    assert run(capsys, "routers", "pull")[0] == 0  # tiny-token-mean@1 active
    assert run(capsys, "routers", "pull", V2)[0] == 0
    process, url = start_serve(device, tmp_path, HYBRID_ROUTER_THRESHOLD="0.0", HYBRID_ROUTER_ROUTER_REFRESH_S="1")
    try:
        assert chat(url)["routing"]["router_version"] == "1"
        assert run(capsys, "routers", "use", V2)[0] == 0
        started = time.monotonic()
        wait_for(lambda: chat(url)["routing"]["router_version"] == "2", 10, "serve kept routing with version 1")
        assert time.monotonic() - started < 5

        code, _, err = run(capsys, "experiments", "start", "ab-live", "--candidate", V1, "--mode", "ab", "--share", "1")
        assert code == 0, err
        answer = wait_for(
            lambda: (lambda a: a if a["routing"]["router_version"] == "1" else None)(chat(url)),
            10,
            "serve did not start the experiment",
        )
        with DecisionLog(tmp_path / "device" / "decisions.sqlite3") as log:
            record = log.get(answer["routing"]["decision_id"])
        assert (record.experiment_id, record.arm, record.router_version) == ("ab-live", "candidate", "1")

        assert run(capsys, "experiments", "stop", "ab-live")[0] == 0
        wait_for(lambda: chat(url)["routing"]["router_version"] == "2", 10, "serve did not end the experiment")

        # a version that cannot load, made active behind the CLI's back: the running server keeps the last good one
        put_version(cloud["blobs"], "garbage", garbage_files(routers))
        assert run(capsys, "routers", "pull", GARBAGE)[0] == 0
        make_active_behind_the_clis_back(tmp_path / "device", "garbage", "1")
        health = wait_for(
            lambda: (lambda h: h if h["status"] == "degraded" else None)(httpx.get(f"{url}/health", timeout=10).json()),
            15,
            "health did not say the router is degraded",
        )
        assert health["router"]["wanted"] == GARBAGE and health["router"]["version"] == "2"
        assert chat(url)["routing"]["router_version"] == "2"
    finally:
        stop(process)
