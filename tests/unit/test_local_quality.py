"""The local failure rate users report through ratings, against the quality target in force: usage and both
dashboards say when the evidence shows the target is not met."""

from __future__ import annotations

import pytest

from hybrid_router.dashboard import build, page
from hybrid_router.local_quality import local_quality, local_quality_by, rating_units
from hybrid_router.stores.protocol import Rating


def rated(make_decision, wrong: int, right: int, target: float | None = 0.9, route: str = "weak"):
    records = [make_decision(route=route, quality_target=target, quality_confidence=0.95) for _ in range(wrong + right)]
    ratings = {r.decision_id: Rating(-1 if i < wrong else 1, "thumbs") for i, r in enumerate(records)}
    return records, ratings


@pytest.mark.parametrize(
    ("wrong", "right", "verdict"),
    [(30, 70, "target not met"), (0, 60, "target met"), (1, 4, "not known yet"), (0, 0, "no ratings")],
)
def test_the_verdict_follows_the_evidence(make_decision, wrong: int, right: int, verdict: str) -> None:
    records, ratings = rated(make_decision, wrong, right)
    quality = local_quality(records, rating_units(ratings))
    assert (quality.rated, quality.failures, quality.verdict) == (wrong + right, wrong, verdict)
    if quality.rated:
        assert quality.lower <= quality.failure_rate <= quality.upper


def test_only_rated_local_answers_count_and_stars_below_three_are_wrong(make_decision) -> None:
    records, _ = rated(make_decision, 0, 4)
    strong, _ = rated(make_decision, 0, 2, route="strong")
    stars = {records[0].decision_id: Rating(1, "stars"), records[1].decision_id: Rating(3, "stars")}
    stars |= {r.decision_id: Rating(1, "stars") for r in strong}  # strong answers rated wrong: not the local model's
    quality = local_quality([*records, *strong], rating_units(stars))
    assert (quality.rated, quality.failures, quality.target) == (2, 1, 0.9)


def test_no_target_in_force_says_so(make_decision) -> None:
    records, ratings = rated(make_decision, 5, 5, target=None)
    assert local_quality(records, rating_units(ratings)).verdict == "no target"


def test_the_dashboard_warns_per_router_version_and_day(make_decision) -> None:
    bad, bad_ratings = rated(make_decision, 40, 60)
    good, good_ratings = rated(make_decision, 0, 10)
    good = [r.model_copy(update={"router_version": "good"}) for r in good]
    data = build([*bad, *good], {**bad_ratings, **good_ratings}, "t")
    assert data.local_quality_by_router["mf@test"].verdict == "target not met"
    assert data.local_quality.rated == 110
    assert set(local_quality_by(bad, rating_units(bad_ratings), lambda r: r.day)) == {bad[0].day}
    html = page([*bad, *good], {**bad_ratings, **good_ratings}, "t")
    assert 'id="quality-warning"' in html and "mf@test" in html
    assert 'id="quality-warning"' not in page(good, good_ratings, "t")
