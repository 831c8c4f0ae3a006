"""bench/deployed_pair.py: the table's measures come from router_training.evaluate, routers are a registry."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from router_training.evaluate import apgr


def _rows(n: int = 120, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        family = ["a", "b", "c"][i % 3]
        strong = int(rng.random() < {"a": 0.9, "b": 0.6, "c": 0.2}[family])
        weak = int(rng.random() < {"a": 0.1, "b": 0.5, "c": 0.2}[family])
        rows.append(
            {
                "id": f"r{i}",
                "prompt": "x" * rng.randint(5, 50),
                "family": family,
                "seed": 2,
                "scores": {"w": weak, "s": strong},
                "pair": {"weak": "w", "strong": "s"},
                "router_scores": {
                    "default": rng.random(),
                    "pair": float(strong - weak) + rng.random(),
                    "cascade": rng.random(),
                },
            }
        )
    return rows


def test_measure_uses_the_projects_apgr_and_lists_every_router(bench_script) -> None:
    bench = bench_script("deployed_pair")
    rows = _rows()
    result = bench.measure(rows)
    strong = np.array([r["scores"]["s"] for r in rows], dtype=float)
    weak = np.array([r["scores"]["w"] for r in rows], dtype=float)
    pair = np.array([r["router_scores"]["pair"] for r in rows])
    assert list(result["table"]) == ["random", "prompt length", "default", "pair", "cascade", "oracle"]
    assert result["table"]["pair"]["apgr"] == pytest.approx(apgr(pair, strong, weak), abs=1e-6)
    assert result["table"]["oracle"]["apgr"] >= result["table"]["pair"]["apgr"] > result["table"]["default"]["apgr"]
    assert abs(result["table"]["random"]["apgr"] - 0.5) < 0.1 and result["table"]["random"]["seeds"] == 20
    lo, hi = result["table"]["pair"]["apgr_ci90"]
    assert lo <= result["table"]["pair"]["apgr"] <= hi
    d = result["pair_minus_default"]
    assert d["ci90"][0] <= d["difference"] <= d["ci90"][1] and d["difference"] > 0
    assert set(result["families"]) == {"a", "b", "c"} and result["families"]["a"]["n"] == 40
    text = bench.markdown(result)
    assert "| pair |" in text and "pair - default APGR" in text


def test_router_scores_registry_and_held_out_check(bench_script, tmp_path: Path) -> None:
    bench = bench_script("deployed_pair")
    rows = _rows(6)
    with pytest.raises(KeyError, match="no scorer"):
        bench.router_scores("nope", rows)
    scores = bench.router_scores("default", rows)  # the packaged router, through load_router
    assert scores.shape == (6,) and np.all((scores >= 0) & (scores <= 1))
    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({**rows[0], "family": "z", "prompt": "other", "seed": 1}) + "\n")
    held = bench.check_held_out(rows, train)
    assert held["train_families"] == ["z"] and held["test_seeds"] == [2]
    train.write_text(json.dumps(rows[0]) + "\n")
    with pytest.raises(SystemExit, match="not held out"):
        bench.check_held_out(rows, train)


def _with_drafts(rows: list[dict], seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    for row in rows:
        mean = -rng.uniform(0.0, 2.0)
        row["weak_confidence"] = {
            "mean_logprob": mean,
            "min_logprob": mean - rng.uniform(0.0, 3.0),
            "first_token_prob": rng.random(),
            "reply_tokens": rng.randint(1, 48),
            "span": rng.choice(["answer", "completion"]),
        }
        row["max_tokens"] = 48
    return rows


def test_the_cascade_score_is_the_products_decision_over_the_rows_features(bench_script) -> None:
    from hybrid_router.cascade import load_policy

    bench = bench_script("deployed_pair")
    rows = _with_drafts(_rows(40))
    policy = load_policy()
    default = bench.router_scores("default", rows)
    cascade = bench.router_scores("cascade", rows)
    for score, row, ordered in zip(default, rows, cascade, strict=False):
        confidence = policy.confidence(row["weak_confidence"], 48)
        settled = policy.pre_route(float(score))
        strong = settled == "strong" or (settled == "draft" and not policy.keeps(confidence))
        assert (ordered >= policy.pivot) == strong
        assert ordered == pytest.approx(score if settled != "draft" else policy.score(float(score), confidence))


def test_cascade_selection_fits_a_verifier_and_keeps_families_apart(bench_script) -> None:
    select = bench_script("cascade_select")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    right = (x[:, 0] + 0.3 * rng.normal(size=400) > 0).astype(float)
    verifier = select.fit_verifier(x, right)
    p = np.array([verifier.probability(v) for v in x])
    assert verifier.weights[0] > 1.0 and ((p > 0.5) == right.astype(bool)).mean() > 0.85
    families = [f"f{i % 7}" for i in range(70)]
    folds = select.family_folds(families)
    assert sum(fold.sum() for fold in folds) == 70
    for fold in folds:
        inside = {f for f, held in zip(families, fold, strict=False) if held}
        assert inside.isdisjoint({f for f, held in zip(families, fold, strict=False) if not held})
