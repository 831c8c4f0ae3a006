"""The router runtime on the shipped default router file (real onnxruntime, real tokenizer)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hybrid_router.routing import (
    RouteDecision,
    RouterLoadError,
    load_router,
    load_router_for_kind,
    parse_router_model,
)
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR, Router
from router_training.data import shared_data_dir

PROMPTS = [
    "What is the capital of France?",
    "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain why it is open.",
    "Write a haiku about autumn leaves.",
    "A train leaves at 3pm going 60 mph; another leaves at 4pm going 80 mph. When does the second catch up?",
]


@pytest.fixture(scope="module")
def router() -> Router:
    return load_router(DEFAULT_ROUTER_DIR)


def test_default_router_metadata(router: Router) -> None:
    info = router.info
    assert info.kind in {"mf", "clf"}
    assert info.strong_model == "gpt-4-1106-preview"
    assert info.weak_model == "mistralai/Mixtral-8x7B-Instruct-v0.1"
    assert 0.0 <= info.default_threshold <= 1.0
    assert len(info.metadata["calibration"]["quantiles"]) == 101
    assert info.metadata["training_data"], "training data must be recorded"
    size = sum(p.stat().st_size for p in DEFAULT_ROUTER_DIR.iterdir() if p.name in {"router.onnx", "tokenizer.json"})
    assert size <= 25e6


def test_load_router_default_and_cache(router: Router, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRID_ROUTER_ROUTER", raising=False)
    assert load_router() is router
    assert load_router(DEFAULT_ROUTER_DIR / "router.onnx") is router
    assert load_router_for_kind(None) is router
    assert load_router_for_kind(router.info.kind) is router
    with pytest.raises(RouterLoadError, match="no router of kind"):
        load_router_for_kind("nosuchkind")


def test_env_selects_router(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "r"
    shutil.copytree(DEFAULT_ROUTER_DIR, copy)
    monkeypatch.setenv("HYBRID_ROUTER_ROUTER", str(copy))
    assert load_router().path == (copy / "router.onnx").resolve()


def test_scores_are_probabilities_and_differ(router: Router) -> None:
    scores = router.score(PROMPTS)
    assert scores.dtype == np.float32 and scores.shape == (len(PROMPTS),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert len(set(np.round(scores, 6))) > 1, "a trained router must not give every prompt the same score"


def test_batched_equals_single(router: Router) -> None:
    batched = router.score(PROMPTS)
    single = np.array([router.score([p])[0] for p in PROMPTS])
    np.testing.assert_allclose(batched, single, atol=1e-6)
    assert router.score([]).shape == (0,)


def test_score_rejects_a_bare_string(router: Router) -> None:
    with pytest.raises(TypeError, match="sequence of prompts"):
        router.score("just a string")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str or bytes"):
        router.score([None])  # type: ignore[list-item]


def test_long_prompt_is_truncated_and_fast(router: Router) -> None:
    words = ("lorem ipsum dolor sit amet consectetur adipiscing elit " * 2000)[:100_000]
    prompt = words + " What is the final answer?"
    router.score([prompt])
    started = time.perf_counter()
    score = router.score([prompt])[0]
    assert time.perf_counter() - started < 1.0
    assert 0.0 <= score <= 1.0
    ids = router._tokenizer.ids([prompt])[0]
    assert len(ids) == router._tokenizer.max_tokens
    assert ids[-2] == router._tokenizer.ids(["What is the final answer?"])[0][-2], "the tail must be kept"


def test_empty_prompt_is_scored_as_empty_text(router: Router) -> None:
    score = router.score([""])[0]
    assert 0.0 <= score <= 1.0
    assert router._tokenizer.ids([""])[0] == [router._tokenizer.cls_id, router._tokenizer.sep_id]
    assert router.decide("").route in {"weak", "strong"}


def test_invalid_utf8_and_surrogates_do_not_crash(router: Router) -> None:
    scores = router.score([b"caf\xc3\xa9 \xff\xfe broken", "lone \ud800 surrogate", "pair \U0001f600"])
    assert np.all(np.isfinite(scores))
    assert router.score([b"caf\xc3\xa9"])[0] == pytest.approx(router.score(["café"])[0], abs=1e-6)


def test_decide_threshold_and_share(router: Router) -> None:
    score = float(router.score([PROMPTS[1]])[0])
    assert router.decide(PROMPTS[1], threshold=score).route == "strong"
    above = min(1.0, float(np.nextafter(np.float32(score), np.float32(2.0))))
    if above > score:
        assert router.decide(PROMPTS[1], threshold=above).route == "weak"
    decision = router.decide(PROMPTS[1])
    assert isinstance(decision, RouteDecision)
    assert decision.threshold == router.info.default_threshold
    assert decision.latency_ms > 0
    assert router.decide(PROMPTS[1], strong_share=0.3).threshold == pytest.approx(router.threshold_for_share(0.3))
    assert router.decide(PROMPTS[1], strong_share=1.0).route == "strong"
    assert router.decide(PROMPTS[1], strong_share=0.0).route == "weak"
    with pytest.raises(ValueError):
        router.decide(PROMPTS[1], threshold=0.5, strong_share=0.5)
    with pytest.raises(ValueError):
        router.decide(PROMPTS[1], threshold=1.5)
    with pytest.raises(ValueError):
        router.threshold_for_share(1.2)


def test_threshold_for_share_is_monotone_and_matches_calibration(router: Router) -> None:
    shares = np.linspace(0, 1, 41)
    thresholds = [router.threshold_for_share(s) for s in shares]
    assert all(a >= b for a, b in zip(thresholds, thresholds[1:], strict=False))
    quantiles = router.info.metadata["calibration"]["quantiles"]
    assert router.threshold_for_share(0.3) == pytest.approx(quantiles[70], abs=1e-9)
    assert router.threshold_for_share(0.5) == pytest.approx(quantiles[50], abs=1e-9)
    assert router.info.default_threshold == pytest.approx(
        router.threshold_for_share(router.info.metadata["default_strong_share"]), abs=1e-9
    )


def test_calibration_holds_on_fresh_training_prompts(router: Router) -> None:
    """About 30% of prompts from the calibration files score above the 30% threshold (loose: other prompts)."""
    import json

    prompts = []
    for name in ("arena_bench_v1.jsonl", "mmlu_pro.jsonl", "routerbench_train.jsonl"):
        path = shared_data_dir() / "train" / name
        if not path.is_file():
            pytest.skip("shared training data not present")
        with open(path, encoding="utf-8") as handle:
            lines = handle.readlines()
        prompts += [json.loads(line)["prompt"] for line in lines[-40:]]
    share = float(np.mean(router.score(prompts) >= router.threshold_for_share(0.3)))
    assert 0.1 <= share <= 0.6


def test_mf_pair_scores() -> None:
    router = load_router_for_kind("mf")
    assert len(router.info.models) >= 30, "the MF router covers all models of the training files"
    logits = router.model_logits(PROMPTS)
    assert logits.shape == (len(PROMPTS), len(router.info.models))
    pair = router.score_pair(PROMPTS, router.info.strong_model, router.info.weak_model)
    np.testing.assert_allclose(pair, router.score(PROMPTS), atol=1e-5)
    with pytest.raises(ValueError, match="does not know"):
        router.score_pair(PROMPTS, "no-such-model", router.info.weak_model)
    other = router.score_pair(PROMPTS, "gpt-4o-2024-05-13", "Llama-2-7b-hf")
    assert other.shape == (len(PROMPTS),) and np.all((other > 0) & (other < 1))
    with pytest.raises(ValueError, match="no per-model logits"):
        load_router().model_logits(PROMPTS)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RouterLoadError, match="not found"):
        load_router(tmp_path / "nothing.onnx")
    with pytest.raises(RouterLoadError, match="not found"):
        load_router(tmp_path)


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "router.onnx"
    bad.write_bytes(b"this is not an onnx file" * 10)
    shutil.copy(DEFAULT_ROUTER_DIR / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(RouterLoadError, match="cannot load router file"):
        Router(bad)
    truncated = tmp_path / "half.onnx"
    truncated.write_bytes((DEFAULT_ROUTER_DIR / "router.onnx").read_bytes()[:4096])
    with pytest.raises(RouterLoadError):
        Router(truncated)


def _plain_onnx(path: Path, metadata: dict[str, str] | None = None) -> None:
    node = helper.make_node("Identity", ["x"], ["score"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def test_wrong_kind_of_onnx(tmp_path: Path) -> None:
    path = tmp_path / "other.onnx"
    _plain_onnx(path)
    with pytest.raises(RouterLoadError, match="not a hybrid-router router"):
        Router(path)
    _plain_onnx(path, {"hybrid_router_format": "1", "kind": '"mf"'})
    with pytest.raises(RouterLoadError, match="lacks"):
        Router(path)
    _plain_onnx(path, {"hybrid_router_format": "99"})
    with pytest.raises(RouterLoadError, match="not supported"):
        Router(path)
    _plain_onnx(path, {"hybrid_router_format": "{not json"})
    with pytest.raises(RouterLoadError, match="not valid JSON"):
        Router(path)


def test_missing_tokenizer(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_ROUTER_DIR / "router.onnx", tmp_path / "router.onnx")
    with pytest.raises(RouterLoadError, match="tokenizer file not found"):
        Router(tmp_path)


@pytest.mark.parametrize(
    "name, kind, threshold",
    [
        ("router", None, None),
        ("router-mf", "mf", None),
        ("router-mf-0.116", "mf", 0.116),
        ("router-clf-0.5", "clf", 0.5),
        ("router-random-1", "random", 1.0),
        ("router-default-0.2", None, 0.2),
        ("router-0.3", None, 0.3),
        ("Router-MF-0.116", "mf", 0.116),
    ],
)
def test_parse_router_model(name: str, kind: str | None, threshold: float | None) -> None:
    spec = parse_router_model(name)
    assert spec is not None
    assert (spec.kind, spec.threshold, spec.name) == (kind, threshold, name)


@pytest.mark.parametrize(
    "name", ["gpt-4", "routers", "router-mf-1.5", "router-mf-abc", "router--0.1", "", "router-mf-0.1-x"]
)
def test_parse_router_model_rejects(name: str) -> None:
    assert parse_router_model(name) is None


def test_every_shipped_kind_loads_and_routes() -> None:
    from hybrid_router.routing import available_kinds

    kinds = available_kinds()
    assert load_router().info.kind in kinds
    for kind, path in kinds.items():
        spec = parse_router_model(f"router-{kind}-0.5")
        assert spec is not None and spec.kind == kind
        router = load_router_for_kind(spec.kind)
        assert router.info.kind == kind
        assert router.path == path.resolve()
        decision = router.decide(PROMPTS[0], threshold=spec.threshold)
        assert decision.route in {"weak", "strong"} and decision.threshold == 0.5


def test_thread_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    two = Router(DEFAULT_ROUTER_DIR, intra_op_num_threads=2)
    np.testing.assert_allclose(two.score(PROMPTS), load_router(DEFAULT_ROUTER_DIR).score(PROMPTS), atol=1e-6)
    monkeypatch.setenv("HYBRID_ROUTER_THREADS", "many")
    with pytest.raises(RouterLoadError, match="whole number"):
        Router(DEFAULT_ROUTER_DIR)
