"""hybrid_router.experiments: arm assignment, the tests behind the verdict, and the report against a recount."""

from __future__ import annotations

import math
import random

import pytest

from hybrid_router.experiments import MIN_RATINGS, Ratings, arm_for, mcnemar_exact, report, two_proportion_z, welch_z
from hybrid_router.registry import Experiment, RouterRef
from hybrid_router.stores.protocol import Rating
from hybrid_router.ulid import new_ulid
from hybrid_router.usage import percentile

CONTROL = RouterRef(router_id="r", version="1")
CANDIDATE = RouterRef(router_id="r", version="2")


def experiment(mode: str = "ab", share: float = 0.5) -> Experiment:
    return Experiment(experiment_id="exp-1", mode=mode, control=CONTROL, candidate=CANDIDATE, share=share)


def test_ab_assignment_is_deterministic_by_request_and_near_the_share() -> None:
    ab = experiment(share=0.3)
    ids = [new_ulid() for _ in range(4000)]
    arms = [arm_for(ab, i) for i in ids]
    assert arms == [arm_for(ab, i) for i in ids]  # the same request always lands in the same arm
    assert abs(arms.count("candidate") / len(ids) - 0.3) < 0.03
    assert {arm_for(experiment("shadow"), i) for i in ids[:50]} == {"control"}
    assert {arm_for(experiment(share=0.0), i) for i in ids[:50]} == {"control"}
    assert {arm_for(experiment(share=1.0), i) for i in ids[:50]} == {"candidate"}


def test_mcnemar_exact_matches_the_binomial_by_hand() -> None:
    assert mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact(3, 3) == 1.0
    # b=2, c=8: 2 * P(X <= 2), X ~ Bin(10, 1/2) = 2 * (1 + 10 + 45) / 1024
    assert mcnemar_exact(2, 8) == pytest.approx(2 * 56 / 1024)


def test_welch_and_two_proportion_tests() -> None:
    z, p = welch_z(0.5, 0.04, 100, 0.6, 0.04, 100)
    assert z == pytest.approx(0.1 / math.sqrt(0.0008)) and p == pytest.approx(0.000407, rel=0.01)
    z, p = two_proportion_z(50, 100, 50, 100)
    assert (z, p) == (0.0, 1.0)
    z, p = two_proportion_z(50, 100, 30, 100)
    assert z < 0 and p < 0.01


def test_ratings_interval_and_percentiles() -> None:
    r = Ratings.of([0.0, 1.0] * 50)
    assert r.mean == 0.5 and r.low == pytest.approx(0.5 - 1.96 * math.sqrt(r.variance / 100), abs=1e-4)
    assert Ratings.of([]).mean is None and Ratings.of([1.0]).low is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and percentile([], 95) == 0.0


def _records(make_decision, mode: str, n: int, seed: int = 3) -> list:
    rng = random.Random(seed)
    exp = experiment(mode)
    out = []
    for _ in range(n):
        record = make_decision(route=rng.choice(["weak", "strong"]))
        arm = arm_for(exp, record.decision_id)
        out.append(
            record.model_copy(
                update={
                    "experiment_id": exp.experiment_id,
                    "arm": arm,
                    "shadow_route": rng.choice(["weak", "strong"]),
                    "shadow_router_id": "r",
                    "shadow_router_version": "1" if arm == "candidate" else "2",
                    "shadow_score": rng.random(),
                    "shadow_threshold": 0.5,
                    "shadow_router_latency_ms": rng.uniform(0.1, 2),
                    "reason": rng.choice(["routed"] * 9 + ["fallback:timeout"]),
                }
            )
        )
    return out


def test_ab_report_equals_a_recount_of_the_records(make_decision) -> None:
    records = _records(make_decision, "ab", 200)
    other = make_decision()  # not in the experiment: left out
    ratings = {r.decision_id: Rating(random.Random(r.decision_id).choice([-1, 1]), "thumbs") for r in records[::2]}
    result = report(experiment("ab"), records + [other], ratings)
    assert result.requests == 200
    for arm in ("control", "candidate"):
        mine = [r for r in records if r.arm == arm]
        got = result.arms[arm]
        assert got.requests == len(mine) and got.strong == sum(r.route == "strong" for r in mine)
        assert got.cost_usd == pytest.approx(sum(r.cost_usd for r in mine))
        assert got.saving_usd == pytest.approx(sum(r.strong_cost_usd - r.cost_usd for r in mine))
        assert got.fallback_rate == pytest.approx(sum(r.reason != "routed" for r in mine) / len(mine))
        rated = [(ratings[r.decision_id][0] + 1) / 2 for r in mine if r.decision_id in ratings]
        assert got.ratings.count == len(rated) and got.ratings.mean == pytest.approx(sum(rated) / len(rated))
    routed = [r for r in records if r.reason == "routed"]
    assert result.agreement == pytest.approx(sum(r.route == r.shadow_route for r in routed) / len(routed))
    assert result.verdict.outcome != "not_enough_data" and result.verdict.p_value is not None


def test_ab_without_enough_ratings_says_how_many_more(make_decision) -> None:
    records = _records(make_decision, "ab", 40)
    rated = [r for r in records if r.arm == "control"][:5]
    result = report(experiment("ab"), records, {r.decision_id: Rating(4, "stars") for r in rated})
    assert result.verdict.outcome == "not_enough_data"
    assert f"{MIN_RATINGS - 5} more rated answers in the control arm" in result.verdict.needed


def test_shadow_report_uses_the_candidates_routes(make_decision) -> None:
    records = _records(make_decision, "shadow", 120)
    result = report(experiment("shadow"), records, {})
    candidate = result.arms["candidate"]
    assert candidate.estimated and candidate.requests == 120
    assert candidate.strong == sum(r.shadow_route == "strong" for r in records)
    routed = [r for r in records if r.reason == "routed"]
    b = sum(r.route == "strong" and r.shadow_route == "weak" for r in routed)
    c = sum(r.route == "weak" and r.shadow_route == "strong" for r in routed)
    assert result.verdict.p_value == pytest.approx(mcnemar_exact(b, c))
    assert "McNemar" in result.verdict.test
    few = report(experiment("shadow"), records[:3], {})
    assert few.verdict.outcome == "not_enough_data" and "disagreements" in few.verdict.needed


def _arm_records(make_decision, arm: str, n: int, strong: int) -> list:
    exp = experiment("ab")
    out = []
    while len(out) < n:
        record = make_decision(route="strong" if sum(r.route == "strong" for r in out) < strong else "weak")
        if arm_for(exp, record.decision_id) == arm:  # the arm its decision id lands in
            out.append(record.model_copy(update={"experiment_id": "exp-1", "arm": arm, "shadow_route": "weak"}))
    return out


@pytest.mark.parametrize(
    "candidate_strong, candidate_rating, outcome",
    [
        (5, 1, "candidate_better"),  # far fewer strong, rated the same
        (20, 1, "no_difference"),  # as many strong: no saving to speak of
        (5, -1, "candidate_worse"),  # cheaper, but rated far lower
    ],
)
def test_the_ab_verdict(make_decision, candidate_strong, candidate_rating, outcome) -> None:
    control = _arm_records(make_decision, "control", 40, strong=20)
    candidate = _arm_records(make_decision, "candidate", 40, strong=candidate_strong)
    ratings = {r.decision_id: Rating(1 if i % 4 else -1, "thumbs") for i, r in enumerate(control)}
    ratings.update(
        {r.decision_id: Rating(candidate_rating if i % 4 else -1, "thumbs") for i, r in enumerate(candidate)}
    )
    verdict = report(experiment("ab"), control + candidate, ratings).verdict
    assert verdict.outcome == outcome, verdict.summary
