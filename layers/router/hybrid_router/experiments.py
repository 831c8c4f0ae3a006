"""Router experiments on live traffic: which router decides a request, and the per-arm report with its verdict.

One copy for the device (`hybrid-router experiments report`) and the cloud (`GET /v1/experiments/{id}`).

Deciding (`decide`): both routers score every prompt of an experiment; no prompt is answered twice.
- shadow: the control routes; the record keeps the candidate's score and route (`shadow_*`), and its scoring time
  (measured right after the control's, so slightly warmer).
- ab: the arm is a deterministic function of the experiment id and the request's decision id (`arm_for`: the
  first 8 bytes of sha256("<experiment_id>:<decision_id>") as a fraction of 2**64, below `share` -> candidate).
  Assignment is by request, so one device's traffic is split too. The other arm's router scores the prompt as the
  shadow, so agreement between the arms is measured in both modes.
A threshold the caller names applies to the control router; the candidate uses its own default threshold. A
target strong share applies to both (each router's own calibration table).

Reporting (`report`): per arm, over the records tagged with the experiment, plus the ratings of those records.
The verdict's tests, at a two-sided alpha of 0.05:
- shadow: McNemar's exact test (binomial, p = 1/2) on the discordant pairs of routes (control strong and candidate
  weak, or the reverse): does the candidate send a different share of prompts strong? Needs MIN_DISCORDANT
  disagreements. Quality cannot be compared in shadow mode (the candidate's choices were not answered).
- ab: Welch's two-sample test on the ratings (each on [0, 1]: stars (r - 1) / 4, thumbs -1 -> 0, +1 -> 1), with
  the normal approximation to its t distribution (valid from MIN_RATINGS ratings per arm), for quality; a
  two-proportion z-test on strong share, for cost. The candidate is better when it sends significantly fewer prompts
  strong, saves a larger share and is not rated significantly worse; worse when it is rated significantly worse;
  else no different.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from hybrid_router.decision import ROUTED, DecisionRecord, is_fallback
from hybrid_router.local_quality import rating_units
from hybrid_router.registry import Experiment
from hybrid_router.stores.protocol import RatingLike
from hybrid_router.usage import percentile

Arm = Literal["control", "candidate"]
ALPHA = 0.05
MIN_RATINGS = 20
MIN_DISCORDANT = 10


def arm_for(experiment: Experiment, decision_id: str) -> Arm:
    """The arm of one request: always control in shadow mode; in an A/B, a fixed hash of the decision id."""
    if experiment.mode == "shadow":
        return "control"
    digest = hashlib.sha256(f"{experiment.experiment_id}:{decision_id}".encode()).digest()
    return "candidate" if int.from_bytes(digest[:8], "big") / 2**64 < experiment.share else "control"


@dataclass(frozen=True)
class ArmDecision:
    """What an experiment decided: the route from the arm's router, and the record fields that say so."""

    router: Any
    score: float
    threshold: float
    route: str
    latency_ms: float
    fields: dict[str, Any]


def decide(
    experiment: Experiment,
    control: Any,
    candidate: Any,
    prompt: str,
    decision_id: str,
    threshold: float | None = None,
    strong_share: float | None = None,
) -> ArmDecision:
    """Both routers score the prompt; the arm's router decides (`control`, `candidate`: hybrid_router Routers)."""
    arm = arm_for(experiment, decision_id)

    def decide_with(router: Any) -> Any:
        if router is control:
            return control.decide(
                prompt, threshold=None if strong_share is not None else threshold, strong_share=strong_share
            )
        return candidate.decide(prompt, strong_share=strong_share)

    # The deciding router scores first (a second scoring of the same prompt runs warmer, which would flatter it),
    # so both arms of an A/B are timed alike; a shadow's time is that of the second scoring.
    used, other = (candidate, control) if arm == "candidate" else (control, candidate)
    decision = decide_with(used)
    shadow = decide_with(other)
    fields = {
        "experiment_id": experiment.experiment_id,
        "arm": arm,
        "shadow_router_id": other.info.router_id,
        "shadow_router_version": other.info.version,
        "shadow_score": min(max(float(shadow.score), 0.0), 1.0),
        "shadow_threshold": min(max(float(shadow.threshold), 0.0), 1.0),
        "shadow_route": shadow.route,
        "shadow_router_latency_ms": float(shadow.latency_ms),
    }
    return ArmDecision(
        used, float(decision.score), float(decision.threshold), decision.route, float(decision.latency_ms), fields
    )


# ---------------------------------------------------------------- statistics


def normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def two_sided_p(z: float) -> float:
    return max(0.0, min(1.0, 2.0 * (1.0 - normal_cdf(abs(z)))))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for discordant counts b and c (binomial with p = 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = math.fsum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return min(1.0, 2.0 * tail)


def welch_z(mean_a: float, var_a: float, n_a: int, mean_b: float, var_b: float, n_b: int) -> tuple[float, float]:
    """(statistic, two-sided p) of Welch's test for mean_b - mean_a, normal approximation."""
    se = math.sqrt(var_a / n_a + var_b / n_b) if n_a and n_b else 0.0
    if se == 0.0:
        same = math.isclose(mean_a, mean_b)
        return 0.0 if same else math.copysign(math.inf, mean_b - mean_a), 1.0 if same else 0.0
    z = (mean_b - mean_a) / se
    return z, two_sided_p(z)


def two_proportion_z(x_a: int, n_a: int, x_b: int, n_b: int) -> tuple[float, float]:
    """(statistic, two-sided p) for the difference of two proportions (pooled standard error)."""
    if not n_a or not n_b:
        return 0.0, 1.0
    pooled = (x_a + x_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0.0:
        return 0.0, 1.0
    z = (x_b / n_b - x_a / n_a) / se
    return z, two_sided_p(z)


# ---------------------------------------------------------------- the report


class Ratings(BaseModel):
    """Ratings on [0, 1]: mean with its 95% interval (normal approximation; None with fewer than two)."""

    count: int = 0
    mean: float | None = None
    low: float | None = None
    high: float | None = None
    variance: float | None = None

    @classmethod
    def of(cls, values: list[float]) -> Ratings:
        n = len(values)
        if n == 0:
            return cls()
        mean = math.fsum(values) / n
        if n < 2:
            return cls(count=n, mean=mean)
        variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
        half = 1.959963984540054 * math.sqrt(variance / n)
        return cls(count=n, mean=mean, low=max(0.0, mean - half), high=min(1.0, mean + half), variance=variance)


class ArmReport(BaseModel):
    arm: Arm
    router_id: str
    router_version: str
    requests: int
    strong: int
    strong_share: float
    cost_usd: float
    strong_cost_usd: float
    saving_usd: float
    saving_share: float
    fallbacks: int
    fallback_rate: float
    router_latency_p50_ms: float
    router_latency_p95_ms: float
    ratings: Ratings
    estimated: bool = False  # shadow candidate: cost from the routes it chose, not from answers it gave


class Verdict(BaseModel):
    outcome: Literal["candidate_better", "candidate_worse", "no_difference", "not_enough_data"]
    test: str
    statistic: float | None = None
    p_value: float | None = None
    cost_test: str | None = None
    cost_p_value: float | None = None
    needed: str | None = None
    summary: str


class ExperimentReport(BaseModel):
    experiment: Experiment
    requests: int
    agreement: float | None
    arms: dict[str, ArmReport]
    verdict: Verdict


def report(
    experiment: Experiment, records: Iterable[DecisionRecord], ratings: Mapping[str, RatingLike]
) -> ExperimentReport:
    """The report over `records` (those tagged with this experiment are used) and `ratings` by decision id (as
    any DecisionStore returns them)."""
    mine = [r for r in records if r.experiment_id == experiment.experiment_id]
    mine.sort(key=lambda r: r.decision_id)
    scored = [r for r in mine if r.shadow_route is not None]
    agreement = (
        (
            sum(r.route == r.shadow_route for r in scored if r.reason == ROUTED)
            / max(1, sum(r.reason == ROUTED for r in scored))
        )
        if scored
        else None
    )
    units = rating_units(ratings)
    refs = {"control": experiment.control, "candidate": experiment.candidate}
    arms: dict[str, ArmReport] = {}
    if experiment.mode == "ab":
        for arm in ("control", "candidate"):
            arms[arm] = _arm(arm, refs[arm].router_id, refs[arm].version, [r for r in mine if r.arm == arm], units)
        verdict = _ab_verdict(arms["control"], arms["candidate"])
    else:
        control = [r for r in mine if r.arm == "control"]
        arms["control"] = _arm("control", experiment.control.router_id, experiment.control.version, control, units)
        arms["candidate"] = _shadow_arm(experiment, control)
        verdict = _shadow_verdict(control)
    return ExperimentReport(experiment=experiment, requests=len(mine), agreement=agreement, arms=arms, verdict=verdict)


def _arm(
    arm: Arm, router_id: str, version: str, records: list[DecisionRecord], units: Mapping[str, float]
) -> ArmReport:
    n = len(records)
    strong = sum(r.route == "strong" for r in records)
    cost = math.fsum(r.cost_usd for r in records)
    strong_cost = math.fsum(r.strong_cost_usd for r in records)
    fallbacks = sum(is_fallback(r.reason) for r in records)
    latencies = [r.router_latency_ms for r in records]
    return ArmReport(
        arm=arm,
        router_id=router_id,
        router_version=version,
        requests=n,
        strong=strong,
        strong_share=strong / n if n else 0.0,
        cost_usd=cost,
        strong_cost_usd=strong_cost,
        saving_usd=strong_cost - cost,
        saving_share=(strong_cost - cost) / strong_cost if strong_cost else 0.0,
        fallbacks=fallbacks,
        fallback_rate=fallbacks / n if n else 0.0,
        router_latency_p50_ms=percentile(latencies, 50),
        router_latency_p95_ms=percentile(latencies, 95),
        ratings=Ratings.of([units[r.decision_id] for r in records if r.decision_id in units]),
    )


def _shadow_arm(experiment: Experiment, control: list[DecisionRecord]) -> ArmReport:
    """The candidate as its shadow decisions say: where it agrees, what the answer cost; where it would have gone
    strong, the strong cost; where it would have stayed local, the control arm's mean cost of a local answer."""
    weak_costs = [r.cost_usd for r in control if r.route == "weak" and r.status == "ok"]
    mean_weak = math.fsum(weak_costs) / len(weak_costs) if weak_costs else 0.0
    costs, strong = [], 0
    for r in control:
        route = r.shadow_route or r.route
        strong += route == "strong"
        if route == r.route:
            costs.append(r.cost_usd)
        else:
            costs.append(r.strong_cost_usd if route == "strong" else mean_weak)
    n = len(control)
    cost = math.fsum(costs)
    strong_cost = math.fsum(r.strong_cost_usd for r in control)
    latencies = [r.shadow_router_latency_ms or 0.0 for r in control]
    return ArmReport(
        arm="candidate",
        router_id=experiment.candidate.router_id,
        router_version=experiment.candidate.version,
        requests=n,
        strong=strong,
        strong_share=strong / n if n else 0.0,
        cost_usd=cost,
        strong_cost_usd=strong_cost,
        saving_usd=strong_cost - cost,
        saving_share=(strong_cost - cost) / strong_cost if strong_cost else 0.0,
        fallbacks=0,
        fallback_rate=0.0,
        router_latency_p50_ms=percentile(latencies, 50),
        router_latency_p95_ms=percentile(latencies, 95),
        ratings=Ratings(),
        estimated=True,
    )


def _shadow_verdict(control: list[DecisionRecord]) -> Verdict:
    routed = [r for r in control if r.reason == ROUTED and r.shadow_route is not None]
    b = sum(r.route == "strong" and r.shadow_route == "weak" for r in routed)  # candidate would save here
    c = sum(r.route == "weak" and r.shadow_route == "strong" for r in routed)
    test = "McNemar's exact test on paired routes (two-sided, alpha 0.05)"
    if b + c < MIN_DISCORDANT:
        rate = (b + c) / len(routed) if routed else 0.0
        more = f"about {math.ceil((MIN_DISCORDANT - b - c) / rate)} more requests" if rate else "more requests"
        return Verdict(
            outcome="not_enough_data",
            test=test,
            needed=f"{MIN_DISCORDANT - (b + c)} more disagreements between the routers ({more} at the current rate)",
            summary=f"not enough data yet: {b + c} of {MIN_DISCORDANT} disagreements",
        )
    p = mcnemar_exact(b, c)
    if p >= ALPHA:
        return Verdict(
            outcome="no_difference",
            test=test,
            statistic=float(b - c),
            p_value=p,
            summary=f"the candidate's strong share is not significantly different (p = {p:.3g}); "
            "shadow mode cannot compare quality: run an A/B next",
        )
    fewer = b > c
    return Verdict(
        outcome="candidate_better" if fewer else "candidate_worse",
        test=test,
        statistic=float(b - c),
        p_value=p,
        summary=f"the candidate sends significantly {'fewer' if fewer else 'more'} prompts strong "
        f"(p = {p:.3g}); shadow mode cannot compare quality: run an A/B next",
    )


def _ab_verdict(control: ArmReport, candidate: ArmReport) -> Verdict:
    test = "Welch's test on ratings, normal approximation (two-sided, alpha 0.05)"
    cost_z, cost_p = two_proportion_z(control.strong, control.requests, candidate.strong, candidate.requests)
    cost_test = "two-proportion z-test on strong share"
    short = {
        arm.arm: MIN_RATINGS - arm.ratings.count
        for arm in (control, candidate)
        if arm.ratings.count < MIN_RATINGS or arm.ratings.variance is None
    }
    if short:
        needed = ", ".join(f"{max(n, 1)} more rated answers in the {arm} arm" for arm, n in short.items())
        return Verdict(
            outcome="not_enough_data",
            test=test,
            cost_test=cost_test,
            cost_p_value=cost_p,
            needed=needed,
            summary=f"not enough data yet: {needed} (at least {MIN_RATINGS} per arm)",
        )
    a, b = control.ratings, candidate.ratings
    assert a.mean is not None and b.mean is not None and a.variance is not None and b.variance is not None
    z, p = welch_z(a.mean, a.variance, a.count, b.mean, b.variance, b.count)
    base: dict[str, Any] = dict(test=test, statistic=z, p_value=p, cost_test=cost_test, cost_p_value=cost_p)
    if p < ALPHA and b.mean < a.mean:
        return Verdict(
            outcome="candidate_worse",
            **base,
            summary=f"the candidate is rated significantly worse ({b.mean:.3f} vs {a.mean:.3f}, p = {p:.3g})",
        )
    cheaper = candidate.strong_share < control.strong_share and cost_p < ALPHA
    if cheaper and candidate.saving_share > control.saving_share:
        return Verdict(
            outcome="candidate_better",
            **base,
            summary=f"the candidate sends significantly fewer prompts strong ({candidate.strong_share:.1%} "
            f"vs {control.strong_share:.1%}, p = {cost_p:.3g}), saves {candidate.saving_share:.1%} "
            f"against {control.saving_share:.1%}, and is not rated significantly worse "
            f"({b.mean:.3f} vs {a.mean:.3f}, p = {p:.3g}): promote it",
        )
    return Verdict(
        outcome="no_difference",
        **base,
        summary=f"the candidate saves {candidate.saving_share:.1%} against {control.saving_share:.1%} "
        f"(strong share p = {cost_p:.3g}); ratings {b.mean:.3f} vs {a.mean:.3f} (p = {p:.3g}): "
        "no significant gain, keep the control",
    )
