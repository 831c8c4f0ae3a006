"""The quality target end to end: `hybrid-router calibrate` through the real CLI on a small labelled file, the
device's route source routing at that operating point with the real packaged router (onnxruntime), the record
naming the target in the SQLite log, and `config` / `doctor` showing the target and what it rests on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_client.config import Settings
from edge_client.doctor import check_quality_target
from edge_client.routing_source import LocalRouteSource, RoutingError
from edge_client.service import EdgeService
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.planning import RouteQuery
from hybrid_router.routing import RouterSpec, load_router
from hybrid_router.routing import operating_point as op
from hybrid_router.stores.sqlite_log import DecisionLog

LOCAL = "tiny-local-model"
PROMPTS = [f"What is {a} + {b}?" for a in range(1, 9) for b in range(1, 9)] + [
    f"Prove that {n} has a unique factorisation into primes, step by step." for n in range(30, 70)
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRID_ROUTER_")}
    env.update(
        {
            "HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"),
            "HYBRID_ROUTER_DATA_DIR": str(tmp_path / "data"),
            "HYBRID_ROUTER_STACK_FILE": str(tmp_path / "no_stack.json"),
            "HYBRID_ROUTER_LOCAL_MODEL_NAME": LOCAL,  # the device's local model is the one the rows label
        }
    )
    return env


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_client.entry", *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, list[float], list[int]]:
    """A labelled file in `hybrid-router label`'s format: the local model right on the 70% lowest-scored prompts
    (by the packaged router), wrong on the rest."""
    router = load_router(None, intra_op_num_threads=1)
    scores = [float(s) for s in router.score(PROMPTS)]
    cut = sorted(scores)[int(0.7 * len(scores))]
    outcomes = [int(s < cut) for s in scores]
    path = tmp_path_factory.mktemp("labels") / "labels.jsonl"
    with path.open("w") as handle:
        for i, (prompt, outcome) in enumerate(zip(PROMPTS, outcomes, strict=False)):
            row = {
                "id": f"label/t/{i}",
                "prompt": prompt,
                "scores": {LOCAL: outcome, "strong-model": 1},
                "family": "sums" if "+" in prompt else "proofs",
                "pair": {"weak": LOCAL, "strong": "strong-model"},
            }
            handle.write(json.dumps(row) + "\n")
    return path, scores, outcomes


@pytest.fixture(scope="module")
def calibrated(labelled, tmp_path_factory) -> Path:
    path, _, _ = labelled
    home = tmp_path_factory.mktemp("device")
    done = _cli(home, "calibrate", "--labels", str(path), "--target", "0.9", "--confidence", "0.95")
    assert done.returncode == 0, done.stderr
    assert "quality target 90% at 95% confidence" in done.stdout and f"{len(PROMPTS)} labelled rows" in done.stdout
    return home


def test_calibrate_writes_the_operating_point_for_the_packaged_router(labelled, calibrated) -> None:
    _, scores, outcomes = labelled
    point = op.load(calibrated / "data" / op.FILE_NAME)
    router = load_router(None)
    assert (point.router_id, point.router_version) == (router.info.router_id, router.info.version)
    expected = op.select_threshold([round(s, op.LABEL_DIGITS) for s in scores], outcomes, 0.9, 0.95)
    assert point.met and point.threshold == expected.threshold and point.kept == expected.kept > 0
    assert (point.quality_target, point.quality_confidence, point.rows) == (0.9, 0.95, len(PROMPTS))
    assert point.families == ("proofs", "sums") and point.local_model == LOCAL
    assert point.failure_bound <= 0.1 and "fails on at most 10%" in point.guarantee
    assert point.computed_at[:4].isdigit() and point.labels_file.endswith("labels.jsonl")


def test_calibrate_refuses_rows_that_label_no_local_model(tmp_path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "prompt": "hi", "scores": {"m": 1}}) + "\n")
    done = _cli(tmp_path, "calibrate", "--labels", str(bad))
    assert done.returncode == 2 and "pair.weak" in done.stderr
    assert not (tmp_path / "data" / op.FILE_NAME).exists()


def test_the_route_source_routes_at_the_operating_point_and_names_the_target(calibrated) -> None:
    data_dir = str(calibrated / "data")
    point = op.load(calibrated / "data" / op.FILE_NAME)
    source = LocalRouteSource(data_dir=data_dir)
    assert source.operating_point is not None and source.operating_point_source.startswith("data folder:")
    assert source.default_threshold == point.threshold != source.router.info.default_threshold
    scored = source.decide(RouteQuery("What is 2 + 3?", RouterSpec(name="router")))
    assert scored.threshold == point.threshold
    assert scored.fields == {"quality_target": 0.9, "quality_confidence": 0.95}
    # expert settings and router-<kind>-<t> names replace the target: their decisions name none
    assert source.decide(RouteQuery("hi", RouterSpec(name="router"), 0.5, None)).fields == {}
    assert source.decide(RouteQuery("hi", RouterSpec(name="router"), None, 0.3)).fields == {}
    named = source.decide(RouteQuery("hi", RouterSpec(name="router-clf-0.2", kind="clf", threshold=0.2)))
    assert named.threshold == 0.2 and named.fields == {}
    # another target is recomputed from the file's labelled rows
    looser = LocalRouteSource(data_dir=data_dir, quality_target=0.6)
    assert looser.default_threshold >= point.threshold
    assert looser.decide(RouteQuery("hi", RouterSpec(name="router"))).fields["quality_target"] == 0.6


def test_an_operating_point_for_another_router_version_is_not_used(calibrated, tmp_path) -> None:
    data = json.loads((calibrated / "data" / op.FILE_NAME).read_text())
    data["router_version"] = "not-this-one"
    (tmp_path / op.FILE_NAME).write_text(json.dumps(data))
    source = LocalRouteSource(data_dir=str(tmp_path))
    packaged = op.load(op.PACKAGED_PATH)
    assert source.operating_point is not None and source.operating_point_source.startswith("packaged:")
    assert source.default_threshold == packaged.threshold
    with pytest.raises(RoutingError, match="no operating point for router"):
        LocalRouteSource(data_dir=str(tmp_path), quality_target=0.9, router_path=_other_router(tmp_path))


def _other_router(tmp_path: Path) -> str:
    """The packaged mf router: a router no operating point was computed for."""
    from hybrid_router.routing.router import ARTIFACTS_DIR

    return str(ARTIFACTS_DIR / "mf")


def test_every_decision_record_names_the_target_in_force(calibrated, tmp_path, fixed_backend) -> None:
    settings = Settings(data_dir=str(calibrated / "data"))
    log = DecisionLog(tmp_path / "decisions.sqlite3")
    service = EdgeService(
        settings,
        weak=fixed_backend("weak-model"),
        strong=fixed_backend("strong-model"),
        route_source=LocalRouteSource(data_dir=settings.data_dir),
        decision_log=log,
    )
    request = ChatCompletionRequest(model="router", messages=[{"role": "user", "content": "What is 2 + 3?"}])
    answer = service.complete(request)
    stored = log.get(answer.record.decision_id)
    assert stored is not None and (stored.quality_target, stored.quality_confidence) == (0.9, 0.95)
    forced = service.complete(request.model_copy(update={"model": "router-clf-0.5"}))
    assert log.get(forced.record.decision_id).quality_target is None
    # the local server's `routing` block says so too
    from fastapi.testclient import TestClient

    from edge_client.server import create_app

    with TestClient(create_app(service), base_url="http://localhost") as client:
        body = {"model": "router", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        routing = client.post("/v1/chat/completions", json=body).json()["routing"]
        assert (routing["quality_target"], routing["quality_confidence"]) == (0.9, 0.95)
        body["model"] = "router-clf-0.5"
        assert "quality_target" not in client.post("/v1/chat/completions", json=body).json()["routing"]
    # and `route` names it
    done = _cli(calibrated, "route", "--json", "What is 2 + 3?")
    assert done.returncode == 0 and json.loads(done.stdout)["quality_target"] == 0.9


def test_config_and_doctor_show_the_target_and_what_it_rests_on(calibrated) -> None:
    done = _cli(calibrated, "config", "--json")
    assert done.returncode == 0, done.stderr
    point = json.loads(done.stdout)["operating_point"]
    assert point["in_force"] and point["quality_target"] == 0.9 and point["quality_confidence"] == 0.95
    assert point["rows"] == len(PROMPTS) and point["families"] == ["proofs", "sums"] and point["computed_at"]
    assert "fails on at most 10%" in point["guarantee"]
    text = _cli(calibrated, "config").stdout
    assert "quality target 90% at 95% confidence" in text and f"{len(PROMPTS)} labelled rows" in text
    check = check_quality_target(Settings(data_dir=str(calibrated / "data"), local_model_name=LOCAL))
    assert check.status == "ok" and "2 task families" in check.detail
    expert = check_quality_target(Settings(data_dir=str(calibrated / "data"), local_model_name=LOCAL, threshold=0.4))
    assert expert.status == "warn" and "threshold replaces the quality target" in expert.detail


def test_an_operating_point_for_another_local_model_is_not_used(calibrated) -> None:
    """The rows labelled tiny-local-model: with SmolLM2 as the device's local model the packaged point (SmolLM2's)
    applies instead, and a device whose model no point was computed for routes at the router's own threshold."""
    data_dir = str(calibrated / "data")
    smollm2 = LocalRouteSource(data_dir=data_dir, local_model="smollm2-135m-instruct")
    assert smollm2.operating_point_source.startswith("packaged:") and smollm2.operating_point.local_model == (
        "smollm2-135m-instruct"
    )
    other = LocalRouteSource(data_dir=data_dir, local_model="some-7b-model")
    assert other.operating_point is None and other.default_threshold == other.router.info.default_threshold
    assert "local model tiny-local-model" in other.operating_point_source
    check = check_quality_target(Settings(data_dir=data_dir, local_model_name="some-7b-model"))
    assert check.status == "warn" and "no quality target" in check.detail and "some-7b-model" in check.detail
    done = _cli(calibrated, "route", "--json", "hi")
    assert json.loads(done.stdout)["quality_target"] == 0.9  # the CLI's device runs tiny-local-model (env)


def test_an_experiments_control_routes_at_the_target_and_its_records_name_it(tmp_path, write_tiny_router) -> None:
    """In an A/B test on the device, the control (the router the point was computed for) routes at the target's
    threshold and names it; the candidate's decisions use its own threshold and name no target."""
    pytest.importorskip("onnx", reason="onnx (the train extra) writes the tiny test router")
    from hybrid_router.registry import FolderBlobs, RouterRegistry
    from hybrid_router.ulid import new_ulid

    registry = RouterRegistry(FolderBlobs(tmp_path / "routers"))
    v1 = registry.register(write_tiny_router(tmp_path / "v1", version="1").parent)
    v2 = registry.register(write_tiny_router(tmp_path / "v2", version="2", centre=4000.0).parent)
    registry.activate(v1.ref)
    registry.start_experiment("ab-q", v2.ref, "ab", share=0.5)
    control = load_router(registry.local_folder(v1.ref))
    scores = [float(s) for s in control.score(PROMPTS)]
    outcomes = [int(s < sorted(scores)[80]) for s in scores]
    point = op.compute(scores, outcomes, ["f"] * len(PROMPTS), 0.9, 0.95, "tiny-token-mean", "1", LOCAL)
    point.save(tmp_path / op.FILE_NAME)
    source = LocalRouteSource(None, registry=registry, data_dir=str(tmp_path), local_model=LOCAL)
    assert source.operating_point is not None and point.met
    arms = set()
    for prompt in PROMPTS[:40]:
        scored = source.decide(RouteQuery(prompt, RouterSpec(name="router"), None, None, decision_id=new_ulid()))
        arms.add(scored.fields["arm"])
        if scored.fields["arm"] == "control":
            assert scored.threshold == point.threshold and scored.fields["quality_target"] == 0.9
        else:
            assert "quality_target" not in scored.fields and scored.router_version == "2"
    assert arms == {"control", "candidate"}
