"""The quality target's operating point (hybrid_router.routing.operating_point): the exact Clopper-Pearson bound,
the fixed-sequence threshold, its guarantee in simulation, the edge cases, and the file."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hybrid_router.routing import operating_point as op


def test_clopper_pearson_upper_bound_matches_the_beta_quantile() -> None:
    # 0 failures of n: the bound is 1 - (1 - confidence)^(1/n), in closed form
    assert op.clopper_pearson_upper(0, 29, 0.95) == pytest.approx(1 - 0.05 ** (1 / 29), abs=1e-9)
    # scipy.stats.beta.ppf(0.95, 4, 97) = 0.0757107...
    assert op.clopper_pearson_upper(3, 100, 0.95) == pytest.approx(0.0757107, abs=1e-6)
    # in general: the p at which P(Binomial(n, p) <= failures) is 1 - confidence, checked by a plain sum
    upper = op.clopper_pearson_upper(10, 50, 0.90)
    cdf = sum(math.comb(50, i) * upper**i * (1 - upper) ** (50 - i) for i in range(11))
    assert cdf == pytest.approx(0.10, abs=1e-9) and 0.2 < upper < 0.3
    assert op.clopper_pearson_upper(7, 7, 0.95) == 1.0
    assert op.binomial_cdf(2, 10, 0.5) == pytest.approx(56 / 1024)


def _risk_quadratic(t: float) -> float:
    """P(fail | score < t) for scores uniform on [0, 1] and P(fail | s) = 0.4 s^2."""
    return 0.4 * t * t / 3.0


def _risk_step(t: float) -> float:
    """P(fail | score < t) for P(fail | s) = 0.03 below 0.5, 0.5 above."""
    return 0.03 if t <= 0.5 else (0.015 + 0.5 * (t - 0.5)) / t


@pytest.mark.parametrize(
    ("failure", "risk", "rows"),
    [
        (lambda s: 0.4 * s**2, _risk_quadratic, 1000),
        (lambda s: np.where(s < 0.5, 0.03, 0.5), _risk_step, 400),
    ],
)
def test_the_guarantee_holds_over_many_random_draws(failure, risk, rows) -> None:
    """Over 400 labelled sets drawn at random, the realized failure rate among kept prompts is at most 1 - target in
    at least `confidence` of them, and the threshold is not trivially 0."""
    target, confidence, draws = 0.9, 0.95, 400
    rng = np.random.default_rng(7)
    within, thresholds = 0, []
    for _ in range(draws):
        scores = rng.uniform(size=rows)
        outcomes = (rng.uniform(size=rows) >= failure(scores)).astype(int)
        chosen = op.select_threshold(scores, outcomes, target, confidence)
        thresholds.append(chosen.threshold)
        within += chosen.threshold == 0.0 or risk(chosen.threshold) <= 1 - target
    assert within / draws >= confidence
    assert np.mean(thresholds) > 0.1  # it keeps prompts local, not only passes by sending everything strong


def test_a_failure_rate_above_the_target_everywhere_keeps_nothing_local() -> None:
    """The local model fails 13% of the time at every score: any threshold would break a 90% target, so at least
    95% of draws keep nothing local."""
    rng = np.random.default_rng(3)
    kept_anything = 0
    for _ in range(300):
        scores = rng.uniform(size=500)
        chosen = op.select_threshold(scores, (rng.uniform(size=500) >= 0.13).astype(int), 0.9, 0.95)
        kept_anything += chosen.met
    assert kept_anything / 300 <= 0.05


def test_all_wrong_means_threshold_zero_and_the_user_is_told() -> None:
    scores = np.linspace(0.0, 1.0, 200)
    chosen = op.select_threshold(scores, np.zeros(200, int), 0.9)
    assert (chosen.threshold, chosen.met, chosen.kept) == (0.0, False, 0)
    point = op.compute(scores, [0] * 200, ["a"] * 200, 0.9, 0.95, "r", "1", "tiny-model")
    assert point.threshold == 0.0 and not point.met
    assert (
        "no threshold meets the target" in point.guarantee
        and "every prompt goes to the strong model" in point.guarantee
    )


def test_all_right_keeps_every_prompt_local() -> None:
    scores = np.random.default_rng(0).uniform(0.1, 0.6, size=300)
    chosen = op.select_threshold(scores, np.ones(300, int), 0.9)
    assert chosen.met and chosen.kept == 300 and chosen.threshold > scores.max()
    assert chosen.failure_bound == pytest.approx(1 - 0.05 ** (1 / 300))


def test_right_below_wrong_above_keeps_the_right_ones() -> None:
    scores = np.arange(400) / 400
    outcomes = (scores < 0.5).astype(int)  # right on the lower half, wrong on the upper half
    chosen = op.select_threshold(scores, outcomes, 0.9, 0.95)
    assert chosen.met and 0.5 <= chosen.threshold <= 0.55 and chosen.kept_failures <= 0.1 * chosen.kept


def test_too_few_rows_cannot_meet_a_target() -> None:
    assert op.min_rows(0.9, 0.95) == 29
    chosen = op.select_threshold(np.linspace(0, 1, 20), np.ones(20, int), 0.9, 0.95)
    assert not chosen.met and chosen.threshold == 0.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(op.OperatingPointError, match="quality target"):
        op.select_threshold([0.1], [1], 1.0)
    with pytest.raises(op.OperatingPointError, match="confidence"):
        op.select_threshold([0.1], [1], 0.9, 1.0)
    with pytest.raises(op.OperatingPointError, match="outcomes"):
        op.select_threshold([0.1, 0.2], [1, 2], 0.9)
    with pytest.raises(op.OperatingPointError, match="scores"):
        op.select_threshold([0.1, float("nan")], [1, 1], 0.9)


def test_the_file_round_trips_and_retargets(tmp_path) -> None:
    scores = list(np.arange(300) / 300)
    outcomes = [1 if s < 0.6 else 0 for s in scores]
    point = op.compute(scores, outcomes, ["x", "y"] * 150, 0.9, 0.95, "router-a", "3", "tiny-model", "labels.jsonl")
    path = point.save(tmp_path / op.FILE_NAME)
    data = json.loads(path.read_text())
    assert data["format"] == op.FORMAT and data["quality_target"] == 0.9 and data["families"] == ["x", "y"]
    back = op.load(path)
    assert back.threshold == point.threshold and back.labels == point.labels and back.guarantee == point.guarantee
    looser = back.retarget(0.5, None)
    assert looser.quality_target == 0.5 and looser.threshold >= back.threshold
    assert back.retarget(None, None) is back
    found, where = op.find(tmp_path, "router-a", "3")
    assert found is not None and where.startswith("data folder:")
    other, why = op.find(tmp_path, "router-a", "4")
    assert other is None and "computed for router router-a 3" in why
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / op.FILE_NAME).write_text("{}")
    with pytest.raises(op.OperatingPointError, match="not a hybrid-router operating point"):
        op.load(tmp_path / "bad" / op.FILE_NAME)
