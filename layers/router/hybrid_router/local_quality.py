"""The quality users get from the local model, estimated from their own ratings, against the quality target.

An answer the local model gave (route `weak`, status ok) that its user rated below the middle of the scale (thumbs
down; one or two stars) counts as a local failure. Over the rated local answers of a day, a router version or all
of them, the failure rate comes with Clopper-Pearson bounds, each one-sided at `confidence`: when even the lower
bound is above 1 - target, the ratings say the target is not being met. Ratings are the users' word, not a
verifier's, and users rate some answers and not others: the estimate describes rated answers.
One copy for the device's `usage` and both dashboards.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from pydantic import BaseModel

from hybrid_router.decision import DecisionRecord
from hybrid_router.feedback import unit_score
from hybrid_router.stores.protocol import RatingLike

FAILED_BELOW = 0.5  # a rating on [0, 1] under this marks the answer wrong
Verdict = Literal["no ratings", "no target", "target met", "target not met", "not known yet"]


class LocalQuality(BaseModel):
    """Rated local answers and what they say about the local failure rate."""

    rated: int = 0
    failures: int = 0
    failure_rate: float | None = None
    lower: float | None = None  # Clopper-Pearson, one-sided at `confidence`
    upper: float | None = None
    target: float | None = None  # the quality target most of these answers were routed under
    confidence: float = 0.95
    verdict: Verdict = "no ratings"

    def describe(self) -> str:
        if not self.rated:
            return "no rated local answers"
        line = (
            f"local failure rate {self.failure_rate:.1%} ({self.failures} of {self.rated} rated local answers "
            f"rated wrong; {self.confidence:.0%} bounds {self.lower:.1%}..{self.upper:.1%})"
        )
        if self.target is None:
            return line + "; no quality target in force"
        return f"{line}; target {self.target:.0%} right: {self.verdict}"


def rating_units(ratings: Mapping[str, RatingLike]) -> dict[str, float]:
    """Ratings by decision id (as any DecisionStore returns them), on [0, 1]."""
    return {decision_id: unit_score(int(value.rating), value.scale) for decision_id, value in ratings.items()}


def local_quality(
    records: Iterable[DecisionRecord], ratings: Mapping[str, float], confidence: float = 0.95
) -> LocalQuality:
    """`ratings`: decision id -> rating on [0, 1] (hybrid_router.feedback.unit_score)."""
    local = [r for r in records if r.route == "weak" and r.status == "ok" and r.decision_id in ratings]
    targets = Counter(r.quality_target for r in local if r.quality_target is not None)
    target = targets.most_common(1)[0][0] if targets else None
    if not local:
        return LocalQuality(target=target, confidence=confidence)
    from hybrid_router.routing.operating_point import clopper_pearson_upper  # numpy: only once there are ratings

    n = len(local)
    failures = sum(ratings[r.decision_id] < FAILED_BELOW for r in local)
    upper = clopper_pearson_upper(failures, n, confidence)
    lower = 1.0 - clopper_pearson_upper(n - failures, n, confidence)
    return LocalQuality(
        rated=n,
        failures=failures,
        failure_rate=failures / n,
        lower=lower,
        upper=upper,
        target=target,
        confidence=confidence,
        verdict=_verdict(lower, upper, target),
    )


def _verdict(lower: float, upper: float, target: float | None) -> Verdict:
    if target is None:
        return "no target"
    allowed = 1.0 - target
    if lower > allowed:
        return "target not met"
    return "target met" if upper <= allowed else "not known yet"


def local_quality_by(
    records: Iterable[DecisionRecord],
    ratings: Mapping[str, float],
    key: Callable[[DecisionRecord], str | None],
    confidence: float = 0.95,
) -> dict[str, LocalQuality]:
    """local_quality per group (e.g. per day, per router version), groups in key order."""
    groups: dict[str, list[DecisionRecord]] = {}
    for record in records:
        name = key(record)
        if name is not None:
            groups.setdefault(name, []).append(record)
    return {name: local_quality(groups[name], ratings, confidence) for name in sorted(groups)}


__all__ = ["FAILED_BELOW", "LocalQuality", "local_quality", "local_quality_by", "rating_units"]
