"""CostModel.charge: what an answer cost on each route, what the strong model would have cost, and the saving."""

from __future__ import annotations

import pytest

from hybrid_router.costs import Charge, CostModel, Prices

# Round prices: a strong token costs $1 (prompt) or $2 (completion) a million, a cloud request $0.001, and the
# device draws 36 W at $0.50 a kWh, so 100 s of local generation is 1 Wh and $0.0005.
PRICES = Prices.from_toml(
    """
    [strong]
    pricing = "per_token"
    instance_usd_per_hour = 0.0
    input_tokens_per_second = 1.0
    output_tokens_per_second = 1.0
    input_usd_per_million = 1.0
    output_usd_per_million = 2.0

    [weak]
    device_watts = 36.0
    usd_per_kwh = 0.5

    [cloud_overhead]
    api_gateway_usd_per_request = 0.001
    lambda_usd_per_request = 0.0
    lambda_usd_per_gb_second = 0.0
    lambda_memory_gb = 1.0
    lambda_seconds_per_request = 1.0
    dynamodb_usd_per_write = 0.0
    """
)
COSTS = CostModel(PRICES)
STRONG_USD = 0.003  # 1,000 prompt and 500 completion tokens, and the cloud request
LOCAL_USD, LOCAL_WH = 0.0005, 1.0  # 100 s of local generation
DRAFT_USD, DRAFT_WH = 0.0001, 0.2  # a 20 s cascade draft


def charge(route="strong", prompt=1000, completion=500, seconds=100.0, **rules) -> Charge:
    return COSTS.charge(route, prompt, completion, seconds, **rules)


def same(got: Charge, cost: float, strong: float, energy: float) -> None:
    assert (got.cost_usd, got.strong_cost_usd, got.energy_wh) == pytest.approx((cost, strong, energy))


def test_a_strong_answer_costs_what_the_strong_model_costs_and_saves_nothing() -> None:
    assert COSTS.strong_cost_usd(1000, 500) == pytest.approx(STRONG_USD)
    same(charge("strong"), STRONG_USD, STRONG_USD, 0.0)
    assert charge("strong").saving_usd == pytest.approx(0.0)


def test_a_local_answer_costs_its_electricity_and_saves_the_strong_price() -> None:
    local = charge("weak")
    same(local, LOCAL_USD, STRONG_USD, LOCAL_WH)
    assert local.saving_usd == pytest.approx(STRONG_USD - LOCAL_USD)


def test_a_local_answer_decided_in_the_cloud_also_pays_the_cloud_request() -> None:
    same(charge("weak", remote=True), LOCAL_USD + COSTS.cloud_overhead_usd(), STRONG_USD, LOCAL_WH)
    same(charge("strong", remote=True), STRONG_USD, STRONG_USD, 0.0)  # the strong price has the request in it


@pytest.mark.parametrize("route", ["weak", "strong"])
def test_a_failed_answer_that_delivered_nothing_costs_nothing(route) -> None:
    same(charge(route, completion=0, failed=True), 0.0, 0.0, 0.0)


def test_tokens_delivered_before_an_error_are_paid_for_and_save_nothing() -> None:
    """A stream cut off mid-answer (its usage estimated from what was sent) is paid for, with no saving claimed."""
    strong_cut = charge("strong", completion=500, failed=True)
    same(strong_cut, STRONG_USD, STRONG_USD, 0.0)
    weak_cut = charge("weak", completion=500, failed=True)
    same(weak_cut, LOCAL_USD, LOCAL_USD, LOCAL_WH)
    assert weak_cut.saving_usd == 0.0


def test_a_fallback_claims_no_saving() -> None:
    same(charge("weak", fell_back=True), LOCAL_USD, LOCAL_USD, LOCAL_WH)
    same(charge("strong", fell_back=True), STRONG_USD, STRONG_USD, 0.0)


def test_a_cached_answer_costs_nothing_now_and_keeps_what_it_saved() -> None:
    cached = charge("strong", cached_cost_usd=0.0042)
    same(cached, 0.0, 0.0042, 0.0)
    assert cached.saving_usd == pytest.approx(0.0042)
    same(charge("strong", completion=0, failed=True, cached_cost_usd=0.0042), 0.0, 0.0, 0.0)


def test_a_discarded_draft_adds_its_electricity_and_no_strong_dollars() -> None:
    escalated = charge("strong", draft_s=20.0)
    same(escalated, STRONG_USD + DRAFT_USD, STRONG_USD, DRAFT_WH)
    assert escalated.saving_usd == pytest.approx(-DRAFT_USD)  # the draft was spent for nothing
    same(charge("strong", cached_cost_usd=0.0042, draft_s=20.0), DRAFT_USD, 0.0042, DRAFT_WH)


def test_a_failed_escalation_still_pays_for_its_draft() -> None:
    same(charge("strong", completion=0, failed=True, draft_s=20.0), DRAFT_USD, DRAFT_USD, DRAFT_WH)


def test_a_kept_draft_is_the_local_answer_itself() -> None:
    """On the weak route the draft is the answer: its time is the generation time, not charged twice."""
    assert charge("weak", seconds=20.0, draft_s=20.0) == charge("weak", seconds=20.0)
    same(charge("weak", seconds=20.0, draft_s=20.0), DRAFT_USD, STRONG_USD, DRAFT_WH)
