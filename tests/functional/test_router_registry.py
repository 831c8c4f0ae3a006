"""Versioned routers: registered in a bucket (moto's S3 over HTTP), read by the cloud API without a restart,
pulled by the device through the API (sha256-checked) and used offline."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edge_client.cli import main as cli
from edge_client.config import Settings
from edge_client.routers import CloudRouters, device_registry
from edge_client.routing_source import LocalRouteSource
from hybrid_router.api import ApiSettings, create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.planning import RouteQuery
from hybrid_router.registry import ChecksumMismatch, RouterNotFound, RouterRef, RouterRegistry, S3Blobs, VersionExists
from hybrid_router.routing import RouterSpec
from local_stack.servers import ServerThread
from local_stack.stack import create_bucket

KEY = "key-registry"
PROMPT = "Prove that there are infinitely many primes."


@pytest.fixture(scope="module")
def routers(tmp_path_factory, write_tiny_router) -> dict[str, Path]:
    """Two versions of one router that score the same prompt differently (other centres)."""
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    base = tmp_path_factory.mktemp("routers")
    return {
        "1": write_tiny_router(base / "v1", version="1").parent,
        "2": write_tiny_router(base / "v2", version="2", centre=1000.0).parent,
    }


@pytest.fixture
def bucket(dynamodb_endpoint, monkeypatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", dynamodb_endpoint)  # moto serves S3 on the same port
    name = f"routers-{uuid.uuid4().hex[:12]}"
    create_bucket(dynamodb_endpoint, "us-east-1", name)
    return name


@pytest.fixture
def registry(bucket) -> RouterRegistry:
    return RouterRegistry(S3Blobs(bucket, region="us-east-1"))


@pytest.fixture
def api(bucket, tmp_path) -> Iterator[str]:
    settings = ApiSettings(
        routers_bucket=bucket,
        router_refresh_s=0,
        router_cache_dir=str(tmp_path / "cache"),
        region="us-east-1",
        api_keys=parse_key_map(f"{KEY}=acme/dev"),
    )
    server = ServerThread(create_app(settings), name="cloud-api").start()
    try:
        yield server.url
    finally:
        server.stop()


def route(api: str) -> dict:
    response = httpx.post(f"{api}/v1/route", json={"prompt": PROMPT}, headers={"x-api-key": KEY}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_the_active_version_changes_in_the_cloud_without_a_restart(api, registry, routers) -> None:
    before = route(api)  # an empty bucket: the packaged router routes until a version is activated
    v1, v2 = registry.register(routers["1"]), registry.register(routers["2"])
    registry.activate(v1.ref)
    first = route(api)
    assert before["router_id"] != "tiny-token-mean"
    registry.activate(v2.ref)  # one write to the bucket: no deployment, no restart of the server
    second = route(api)
    assert (first["router_id"], first["router_version"]) == ("tiny-token-mean", "1")
    assert second["router_version"] == "2" and second["score"] > first["score"]
    listing = httpx.get(f"{api}/v1/routers", headers={"x-api-key": KEY}).json()
    assert listing["deployment"]["active"] == {"router_id": "tiny-token-mean", "version": "2"}
    assert [v["version"] for v in listing["versions"]] == ["1", "2"]
    assert httpx.get(f"{api}/v1/routers").status_code == 401  # the same key as every other route


def test_a_version_is_never_replaced(registry, routers, tmp_path, write_tiny_router) -> None:
    registry.register(routers["1"])
    assert registry.register(routers["1"]).ref == RouterRef(router_id="tiny-token-mean", version="1")  # same bytes
    other = write_tiny_router(tmp_path / "other", version="1", centre=3000.0).parent
    with pytest.raises(VersionExists):
        registry.register(other)
    with pytest.raises(RouterNotFound):
        registry.activate(RouterRef(router_id="tiny-token-mean", version="9"))


def test_the_device_pulls_checks_and_routes_offline(api, registry, routers, tmp_path) -> None:
    v2 = registry.register(routers["2"])
    settings = Settings(cloud_url=api, api_key=KEY, data_dir=str(tmp_path / "device"))
    local = device_registry(settings)
    CloudRouters(settings).pull(v2.ref, local)
    local.activate(v2.ref)
    folder = local.local_folder(v2.ref)
    assert (folder / "router.onnx").read_bytes() == (routers["2"] / "router.onnx").read_bytes()
    # the cloud is gone (the API server stops after the test; no network is used below): routing goes on
    source = LocalRouteSource(None, registry=local)
    scored = source.decide(RouteQuery(PROMPT, RouterSpec(name="router")))
    assert (scored.router_id, scored.router_version) == ("tiny-token-mean", "2")


def test_a_damaged_file_is_refused_and_not_kept(api, registry, routers, tmp_path, bucket) -> None:
    v1 = registry.register(routers["1"])
    S3Blobs(bucket, region="us-east-1").put(v1.ref.prefix + "tokenizer.json", b"{}")  # bytes the manifest denies
    settings = Settings(cloud_url=api, api_key=KEY, data_dir=str(tmp_path / "device"))
    local = device_registry(settings)
    with pytest.raises(ChecksumMismatch):
        CloudRouters(settings).pull(v1.ref, local)
    assert local.versions() == []


def test_cli_lists_pulls_and_switches(api, registry, routers, tmp_path, monkeypatch, capsys) -> None:
    for version in ("1", "2"):
        registry.register(routers[version])
    registry.activate(RouterRef(router_id="tiny-token-mean", version="1"))
    for name in ("HYBRID_ROUTER_ROUTER", "HYBRID_ROUTER_ROUTER_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HYBRID_ROUTER_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("HYBRID_ROUTER_DATA_DIR", str(tmp_path / "device"))
    monkeypatch.setenv("HYBRID_ROUTER_CLOUD_URL", api)
    monkeypatch.setenv("HYBRID_ROUTER_API_KEY", KEY)
    assert cli(["routers", "pull"]) == 0  # follows the cloud: its active version
    assert cli(["routers", "pull", "tiny-token-mean@2"]) == 0
    assert cli(["routers", "use", "tiny-token-mean@2"]) == 0
    capsys.readouterr()
    assert cli(["routers", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["deployment"]["active"]["version"] == "2"
    assert {m["version"] for m in listed["versions"]} == {"1", "2"}
    assert listed["cloud"]["deployment"]["active"]["version"] == "1"
    assert cli(["route", "--json", PROMPT]) == 0
    assert json.loads(capsys.readouterr().out)["router_version"] == "2"
    monkeypatch.setenv("HYBRID_ROUTER_CLOUD_URL", "http://127.0.0.1:9")  # nothing listens: offline
    assert cli(["routers", "list", "--json"]) == 0
    offline = json.loads(capsys.readouterr().out)
    assert offline["cloud"] is None and offline["cloud_error"] and offline["deployment"]["active"]["version"] == "2"
    assert cli(["routers", "use", "tiny-token-mean@7"]) == 1
    assert "no router tiny-token-mean@7" in capsys.readouterr().err
