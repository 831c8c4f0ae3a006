"""hybrid_router.registry over a folder: versions written once and checked, the deployment, experiments' states."""

from __future__ import annotations

import sqlite3

import pytest

from hybrid_router.registry import (
    ChecksumMismatch,
    ExperimentNotFound,
    FolderBlobs,
    RegistryError,
    RouterRef,
    RouterRegistry,
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
