"""hybrid_router.registry over a folder: versions written once and checked, the deployment, experiments' states."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from hybrid_router.registry import (
    ChecksumMismatch,
    ExperimentNotFound,
    FileEntry,
    FolderBlobs,
    LiveDeployment,
    Manifest,
    RegistryError,
    RouterRef,
    RouterRegistry,
    TooLarge,
    inside,
    receive_file,
)
from hybrid_router.stores.sqlite_log import DecisionLog

V1 = RouterRef(router_id="tiny-token-mean", version="1")
V2 = RouterRef(router_id="tiny-token-mean", version="2")


@pytest.fixture
def registry(tmp_path, write_tiny_router) -> RouterRegistry:
    pytest.importorskip("onnx")
    registry = RouterRegistry(FolderBlobs(tmp_path / "registry"))
    registry.register(write_tiny_router(tmp_path / "v1", version="1").parent)
    registry.register(write_tiny_router(tmp_path / "v2", version="2", centre=3000.0).parent)
    return registry


def test_refs_are_parsed_and_checked() -> None:
    assert RouterRef.parse("my-router@2") == RouterRef(router_id="my-router", version="2")
    for bad in ("no-version", "../etc@1", "a@b/c", "@1"):
        with pytest.raises(ValueError):
            RouterRef.parse(bad)


def test_experiments_move_through_their_states(registry) -> None:
    with pytest.raises(RegistryError, match="no active router"):
        registry.start_experiment("e1", V2, "shadow")
    registry.activate(V1)
    with pytest.raises(RegistryError, match="active router already"):
        registry.start_experiment("e1", V1, "shadow")
    registry.start_experiment("e1", V2, "ab", share=0.2)
    with pytest.raises(RegistryError, match="is running"):
        registry.start_experiment("e2", V2, "shadow")
    deployment = registry.deployment()
    assert deployment.active == V1 and deployment.experiment.control == V1 and deployment.experiment.share == 0.2
    promoted = registry.end_experiment("e1", promote=True)
    assert promoted.active == V2 and promoted.experiment is None
    assert registry.experiment("e1").status == "promoted" and registry.experiment("e1").ended_at
    with pytest.raises(RegistryError, match="not running"):
        registry.end_experiment("e1", promote=False)
    with pytest.raises(ExperimentNotFound):
        registry.end_experiment("nope", promote=False)
    with pytest.raises(RegistryError, match="exists already"):
        registry.start_experiment("e1", V1, "shadow")
    registry.start_experiment("e3", V1, "shadow")  # V2 is the control now
    registry.activate(V1)  # another control: the experiment stops
    assert registry.deployment().experiment is None and registry.experiment("e3").status == "stopped"
    assert [e.experiment_id for e in registry.experiments()] == ["e1", "e3"]


def test_a_damaged_local_copy_is_refused(registry) -> None:
    folder = registry.local_folder(V1)
    (folder / "router.onnx").write_bytes((folder / "router.onnx").read_bytes()[:-1] + b"\0")
    with pytest.raises(ChecksumMismatch, match="router.onnx"):
        registry.local_folder(V1)


def test_an_older_log_gains_the_experiment_column_and_keeps_its_records(tmp_path, make_decision) -> None:
    path = tmp_path / "old.sqlite3"
    record = make_decision()
    with DecisionLog(path) as log:
        log.append(record)
    with sqlite3.connect(path) as db:  # as a log of the version before experiments
        db.execute("ALTER TABLE decisions DROP COLUMN experiment_id")
    tagged = make_decision(experiment_id="e1", arm="candidate", shadow_route="weak", shadow_score=0.25)
    with DecisionLog(path) as log:
        log.append(tagged)
        assert log.get(record.decision_id) == record and record.experiment_id is None
        assert log.experiment_records("e1") == [tagged]


HOSTILE_NAMES = [
    "../../outside/pwned.txt",
    "/etc/pwned.txt",
    "sub/router.onnx",
    "..",
    "a\0b",
    "x" * 300,
    "manifest.json",
]


def hostile_manifest(name: str, data: bytes) -> dict:
    return {
        "router_id": "evil",
        "version": "1",
        "kind": "tiny",
        "strong_model": "s",
        "weak_model": "w",
        "default_threshold": 0.5,
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}},
    }


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_manifest_file_name_must_be_a_plain_name(name) -> None:
    with pytest.raises(ValidationError, match="plain name"):
        Manifest.model_validate(hostile_manifest(name, b"pwned"))


def test_a_manifest_that_points_outside_its_folder_writes_nothing_there(tmp_path) -> None:
    """The registry's fetch (the API function's path) of a manifest naming ../../outside/pwned.txt, with the
    attacker's file in place and its sha256 right: refused before anything is written."""
    registry = RouterRegistry(FolderBlobs(tmp_path / "registry"))
    outside = tmp_path / "outside"
    outside.mkdir()  # a folder the attacker aims at, as ~/.ssh would be
    name, data = "../../outside/pwned.txt", b"pwned\n"
    source = tmp_path / "registry" / "routers" / "evil" / "1" / name
    source.parent.mkdir(parents=True)
    source.write_bytes(data)
    registry.blobs.put("routers/evil/1/manifest.json", json.dumps(hostile_manifest(name, data)).encode())
    with pytest.raises(RegistryError, match="plain name"):
        registry.fetch(RouterRef(router_id="evil", version="1"), tmp_path / "cache")
    assert list(outside.iterdir()) == []
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_the_destination_must_resolve_inside_the_folder(tmp_path) -> None:
    (tmp_path / "v").mkdir()
    assert inside(tmp_path / "v", "router.onnx") == tmp_path / "v" / "router.onnx"
    for name in ("../x", "/etc/passwd", ".", "a/../../x"):
        with pytest.raises(RegistryError, match="outside"):
            inside(tmp_path / "v", name)


def test_a_200_mb_blob_whose_manifest_says_10_bytes_is_cut_at_11(registry, tmp_path) -> None:
    """A sparse 200 MB router.onnx (no disk used) under a manifest that says 10 bytes: the read stops after 11
    bytes, the download is refused, and neither the file nor its partial copy stays."""
    manifest = registry.manifest(V1)
    blob = registry.blobs.path_of(V1.prefix + "router.onnx")
    with open(blob, "r+b") as handle:
        handle.truncate(200 * 1024 * 1024)
    with open(blob, "rb") as handle:
        first = handle.read(10)
    files = dict(manifest.files, **{"router.onnx": FileEntry(sha256=hashlib.sha256(first).hexdigest(), bytes=10)})
    registry.blobs.put(
        V1.prefix + "manifest.json", manifest.model_copy(update={"files": files}).model_dump_json().encode()
    )
    assert sum(len(block) for block in registry.blobs.read(V1.prefix + "router.onnx", 10)) == 11
    started = time.perf_counter()
    with pytest.raises(TooLarge, match="larger than the 10 bytes"):
        registry.fetch(V1, tmp_path / "cache")
    assert time.perf_counter() - started < 5
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_receiving_stops_reading_at_the_declared_size(tmp_path) -> None:
    """However a source sends (one huge block or many), no more than one block past the limit is read."""
    pulled = []

    def endless() -> Iterator[bytes]:
        for _ in range(200):  # 200 MB if read to the end
            pulled.append(1 << 20)
            yield b"\0" * (1 << 20)

    entry = FileEntry(sha256=hashlib.sha256(b"\0" * 10).hexdigest(), bytes=10)
    with pytest.raises(TooLarge):
        receive_file(endless(), tmp_path, "router.onnx", entry, "evil@1")
    assert sum(pulled) == 1 << 20 and list(tmp_path.iterdir()) == []
    receive_file(iter([b"\0" * 4, b"\0" * 6]), tmp_path, "router.onnx", entry, "ok@1")
    assert (tmp_path / "router.onnx").read_bytes() == b"\0" * 10 and len(list(tmp_path.iterdir())) == 1


def test_the_deployment_is_re_read_at_most_every_refresh_interval(registry) -> None:
    """LiveDeployment, as the API function and the device server follow the registry: a change is seen once the
    interval has passed, not before; a failed re-read keeps the last deployment."""
    now = [0.0]
    reads = []

    def read():
        reads.append(now[0])
        if now[0] >= 100:
            raise RegistryError("the bucket is unreachable")
        return registry.deployment()

    live = LiveDeployment(read, refresh_s=30.0, clock=lambda: now[0])
    registry.activate(V1)
    assert live.current().active == V1
    registry.activate(V2)
    now[0] = 29.0
    assert live.current().active == V1 and len(reads) == 1
    now[0] = 30.0
    assert live.current().active == V2 and len(reads) == 2
    now[0] = 100.0
    assert live.current().active == V2 and len(reads) == 3
