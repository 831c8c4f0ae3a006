"""router_training.experiments.pairs_generalisation on the shipped routers (real onnxruntime, real MMLU-Pro rows); training is not rerun."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hybrid_router.routing import Router
from router_training.data import shared_data_dir
from router_training.evaluate import apgr
from router_training.experiments import pairs_generalisation as experiment

REPO = Path(__file__).resolve().parents[2]
TRAIN = shared_data_dir() / "train"
pytestmark = pytest.mark.skipif(not TRAIN.is_dir(), reason="shared training data not present")


def test_train_config_excludes_every_category_and_keeps_the_shipped_selection() -> None:
    config = experiment.train_config("mf", TRAIN, Path("out"), ["physics", "computer science"])
    excluded, held = list(config.exclude), list(config.holdout)
    assert excluded == ["mmlu_pro/physics", "mmlu_pro/computer science"]
    assert not set(excluded) & set(held)
    assert "mmlu_pro/biology" in held and config.kind == "mf"


def test_evaluates_each_pair_on_the_excluded_rows_only() -> None:
    rows = experiment.held_out_rows(TRAIN, ["computer science"])
    assert len(rows) == 136 and all(r["category"] == "computer science" and r["contaminated"] is False for r in rows)
    artifacts = experiment.ARTIFACTS
    routers = {"clf (excluded)": Router(artifacts / "default"), "mf (excluded)": Router(artifacts / "mf")}
    pairs = experiment.PAIRS[:2]
    results = experiment.evaluate_pairs(routers, rows, pairs, bootstrap=50, random_seeds=5)
    assert [(e["strong"], e["weak"], e["router"]) for e in results] == [
        (s, w, r) for s, w in pairs for r in ("clf (excluded)", "prompt length", "mf (excluded)")
    ]
    prompts = [r["prompt"] for r in rows]
    for entry in results:
        strong = np.array([r["scores"][entry["strong"]] for r in rows], dtype=float)
        weak = np.array([r["scores"][entry["weak"]] for r in rows], dtype=float)
        expected = {
            "prompt length": np.array([len(p) for p in prompts], dtype=float),
            "clf (excluded)": routers["clf (excluded)"].score(prompts),
            "mf (excluded)": routers["mf (excluded)"].score_pair(prompts, entry["strong"], entry["weak"]),
        }
        overall = entry["overall"]
        assert overall["n"] == 136
        assert overall["apgr"] == pytest.approx(apgr(expected[entry["router"]].astype(float), strong, weak), abs=1e-6)
        lo, hi = overall["apgr_ci90"]
        assert lo <= overall["apgr"] <= hi
        # One category: no between-category part, so the within-category score ranks exactly like the score.
        assert entry["within_category_apgr"] == pytest.approx(overall["apgr"], abs=1e-6)
    table = experiment.markdown(results, ["computer science"])
    assert "GPT-4o vs Llama-3.1-8B-Instruct" in table and "random (mean ± sd, 5 seeds)" in table
