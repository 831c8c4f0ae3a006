"""RouteLLM measures on hand-made examples, benchmark loading and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_training.data import shared_data_dir
from router_training.evaluate import (
    apgr,
    apgr_routellm_deciles,
    benchmark_from_rows,
    cpt,
    evaluate_benchmark,
    evaluate_scores,
    load_benchmark,
    pgr_at,
    pgr_curve,
    random_apgrs,
)

BENCHMARKS = shared_data_dir() / "benchmarks"

# 4 prompts: the strong model gains 1 point on the first two only. r_strong = .75, r_weak = .25.
STRONG4 = np.array([1.0, 1.0, 1.0, 0.0])
WEAK4 = np.array([0.0, 0.0, 1.0, 0.0])


def test_perfect_router_by_hand():
    # Curve points c = 0, .25, .5, .75, 1 with PGR 0, .5, 1, 1, 1.
    curve = pgr_curve(np.array([4.0, 3.0, 2.0, 1.0]), STRONG4, WEAK4)
    np.testing.assert_allclose(curve.c, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curve.pgr, [0, 0.5, 1, 1, 1])
    assert apgr(np.array([4.0, 3.0, 2.0, 1.0]), STRONG4, WEAK4) == pytest.approx(0.75)
    assert cpt(curve, 0.5) == pytest.approx(0.25)
    assert cpt(curve, 0.8) == pytest.approx(0.4)  # .25 + (.8 - .5) / .5 * .25
    assert pgr_at(curve, 0.1) == pytest.approx(0.2)
    assert pgr_at(curve, 0.3) == pytest.approx(0.6)


def test_inverted_router_is_low():
    # Gains in order 0, 0, 1, 1: PGR 0, 0, 0, .5, 1 -> area .0625 + .1875.
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    assert apgr(scores, STRONG4, WEAK4) == pytest.approx(0.25)
    assert cpt(pgr_curve(scores, STRONG4, WEAK4), 0.5) == pytest.approx(0.75)


def test_oracle_and_negative_gains_by_hand():
    # Gains 4, -2, 0; r_strong - r_weak = 2/3. Oracle order 4, 0, -2: PGR 0, 2, 2, 1 at c = 0, 1/3, 2/3, 1.
    strong = np.array([9.0, 6.0, 8.0])
    weak = np.array([5.0, 8.0, 8.0])
    result = evaluate_scores(strong - weak, strong, weak, random_seeds=3, bootstrap=0)
    assert result["apgr"] == pytest.approx(1.5)
    assert result["oracle_apgr"] == pytest.approx(1.5)
    assert result["cpt50"] == pytest.approx(1 / 12, abs=1e-6)
    assert result["saving_at_95"] == pytest.approx(1 - 0.95 / 6, abs=1e-6)
    assert result["apgr_ci90"] is None


def test_ties_move_together_and_ignore_row_order():
    # All scores equal: one step from (0, 0) to (1, 1), the expected value of random tie-breaking.
    assert apgr(np.full(4, 0.5), STRONG4, WEAK4) == pytest.approx(0.5)
    scores = np.array([0.9, 0.9, 0.1, 0.9])
    permutation = np.array([3, 1, 0, 2])
    assert apgr(scores, STRONG4, WEAK4) == pytest.approx(
        apgr(scores[permutation], STRONG4[permutation], WEAK4[permutation])
    )
    curve = pgr_curve(scores, STRONG4, WEAK4)
    np.testing.assert_allclose(curve.c, [0, 0.75, 1])


def test_routellm_deciles_agree_on_a_small_case():
    assert apgr_routellm_deciles(np.array([4.0, 3.0, 2.0, 1.0]), STRONG4, WEAK4) == pytest.approx(0.75)


def test_random_is_half_and_perfect_beats_it_on_large_n():
    rng = np.random.default_rng(123)
    n = 20000
    strong = (rng.random(n) < 0.8).astype(float)
    weak = (rng.random(n) < 0.65).astype(float)
    randoms = random_apgrs(strong, weak, seeds=10)
    assert abs(randoms.mean() - 0.5) < 0.01
    result = evaluate_scores(strong - weak + rng.normal(0, 0.01, n), strong, weak, random_seeds=10, bootstrap=50)
    assert result["apgr"] == pytest.approx(result["oracle_apgr"], abs=1e-3)
    assert result["apgr"] > 0.9
    lo, hi = result["apgr_ci90"]
    assert lo <= result["apgr"] <= hi


def test_bootstrap_interval_is_reproducible_and_covers():
    rng = np.random.default_rng(7)
    strong = rng.integers(5, 11, 72).astype(float)
    weak = rng.integers(4, 10, 72).astype(float)
    scores = (strong - weak) + rng.normal(0, 2, 72)
    first = evaluate_scores(scores, strong, weak, random_seeds=10, bootstrap=200)
    second = evaluate_scores(scores, strong, weak, random_seeds=10, bootstrap=200)
    assert first == second
    assert first["apgr_ci90"][0] < first["apgr"] < first["apgr_ci90"][1]
    assert first["random_apgr_std"] > 0


def test_equal_means_is_a_clear_error():
    with pytest.raises(ValueError, match="same mean score"):
        apgr(np.array([1.0, 2.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0]))


@pytest.mark.parametrize("name", ["routellm_mmlu.jsonl", "routellm_gsm8k.jsonl", "routellm_mt_bench.jsonl"])
def test_manifest_means_are_reproduced(name):
    manifest = json.loads((BENCHMARKS / "manifest.json").read_text())[name]
    data = load_benchmark(BENCHMARKS / name)
    assert data.strong_model == manifest["strong_model"]
    assert data.weak_model == manifest["weak_model"]
    assert data.n == manifest["decontaminated_rows"]
    assert data.n + data.n_contaminated_excluded == manifest["rows"]
    assert data.strong.mean() == pytest.approx(manifest["mean_strong_score_decontaminated"], abs=1e-6)
    assert data.weak.mean() == pytest.approx(manifest["mean_weak_score_decontaminated"], abs=1e-6)
    assert load_benchmark(BENCHMARKS / name, include_contaminated=True).n == manifest["rows"]


def _row(i, strong=1, weak=0, contaminated=False, **extra):
    row = {"id": f"r{i}", "prompt": f"prompt {i}", "scores": {"S": strong, "W": weak}, "contaminated": contaminated}
    row.update(extra)
    return row


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("field", ["id", "prompt", "scores", "contaminated"])
def test_missing_field_names_line_and_field(tmp_path, field):
    bad = _row(2)
    del bad[field]
    path = _write(tmp_path / "b.jsonl", [json.dumps(_row(1)), json.dumps(bad)])
    with pytest.raises(ValueError, match=rf"b\.jsonl:2: missing field '{field}'"):
        load_benchmark(path, "S", "W")


def test_bad_json_names_line(tmp_path):
    path = _write(tmp_path / "b.jsonl", [json.dumps(_row(1)), json.dumps(_row(2)), '{"id": "r3", "prompt": '])
    with pytest.raises(ValueError, match=r"b\.jsonl:3: bad JSON"):
        load_benchmark(path, "S", "W")


def test_unknown_model_and_missing_model_score(tmp_path):
    path = _write(tmp_path / "b.jsonl", [json.dumps(_row(1)), json.dumps(_row(2, weak=1))])
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        load_benchmark(path, "nope", "W")
    partial = _row(2)
    del partial["scores"]["W"]
    path = _write(tmp_path / "c.jsonl", [json.dumps(_row(1)), json.dumps(partial)])
    with pytest.raises(ValueError, match=r"c\.jsonl:2: field 'scores' has no score for model 'W'"):
        load_benchmark(path, "S", "W")


def test_non_numeric_score_and_duplicate_id(tmp_path):
    path = _write(tmp_path / "b.jsonl", [json.dumps(_row(1)), json.dumps(_row(2, strong="high"))])
    with pytest.raises(ValueError, match=r"b\.jsonl:2: field 'scores.S' must be a finite number"):
        load_benchmark(path, "S", "W")
    path = _write(tmp_path / "c.jsonl", [json.dumps(_row(1)), json.dumps(_row(1))])
    with pytest.raises(ValueError, match=r"c\.jsonl:2: duplicate id 'r1'"):
        load_benchmark(path, "S", "W")


def test_pair_required_when_not_in_a_manifest(tmp_path):
    path = _write(tmp_path / "b.jsonl", [json.dumps(_row(1))])
    with pytest.raises(ValueError, match="--strong M --weak M"):
        load_benchmark(path)


def test_contaminated_rows_are_left_out_with_their_scores():
    rows = [_row(0, 1, 0), _row(1, 1, 1, contaminated=True), _row(2, 0, 0), _row(3, 1, 1)]
    result = evaluate_benchmark(rows, [0.9, 0.0, 0.1, 0.5], "S", "W", random_seeds=2, bootstrap=0)
    assert result["n"] == 3
    assert result["n_excluded_contaminated"] == 1
    assert result["strong_mean"] == pytest.approx(2 / 3)
    # Only row 0 gains; it has the top score, so PGR is 1 from c = 1/3 on.
    assert result["apgr"] == pytest.approx(1 / 6 + 2 / 3)
    everything = evaluate_benchmark(
        rows, [0.9, 0.0, 0.1, 0.5], "S", "W", include_contaminated=True, random_seeds=2, bootstrap=0
    )
    assert everything["n"] == 4
    with pytest.raises(ValueError, match="3 router scores for 4 rows"):
        evaluate_benchmark(rows, [0.1, 0.2, 0.3], "S", "W")
    assert benchmark_from_rows(rows, "S", "W").n == 3
