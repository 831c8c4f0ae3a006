import math
import random

import pytest

from hybrid_router.usage import UsageSummary


def test_empty_summary_is_zero():
    summary = UsageSummary.from_records([])
    assert summary.totals.requests == 0
    assert summary.totals.strong_share == 0.0
    assert summary.totals.mean_router_latency_ms == 0.0
    assert summary.by_day == {} and summary.by_route == {}


def test_totals_by_day_and_by_route(make_decision):
    records = [
        make_decision(
            "strong",
            at="2025-03-01T10:00:00Z",
            cost_usd=0.01,
            strong_cost_usd=0.01,
            prompt_tokens=100,
            completion_tokens=50,
            router_latency_ms=1.0,
        ),
        make_decision(
            "weak",
            at="2025-03-01T11:00:00Z",
            cost_usd=0.0,
            strong_cost_usd=0.02,
            prompt_tokens=10,
            completion_tokens=20,
            router_latency_ms=2.0,
        ),
        make_decision(
            "weak",
            at="2025-03-02T09:00:00Z",
            cost_usd=0.001,
            strong_cost_usd=0.03,
            prompt_tokens=1,
            completion_tokens=2,
            router_latency_ms=3.0,
            reason="fallback:timeout",
        ),
        make_decision(
            "strong",
            at="2025-03-02T09:30:00Z",
            cost_usd=0.04,
            strong_cost_usd=0.04,
            prompt_tokens=0,
            completion_tokens=0,
            router_latency_ms=6.0,
            status="error",
            error="boom",
        ),
    ]
    summary = UsageSummary.from_records(records)
    t = summary.totals
    assert (t.requests, t.strong, t.weak, t.fallbacks, t.errors) == (4, 2, 2, 1, 1)
    assert t.strong_share == 0.5
    assert t.cost_usd == pytest.approx(0.051)
    assert t.strong_cost_usd == pytest.approx(0.10)
    assert t.saving_usd == pytest.approx(0.049)
    assert t.saving_share == pytest.approx(0.49)
    assert (t.prompt_tokens, t.completion_tokens, t.tokens) == (111, 72, 183)
    assert t.mean_router_latency_ms == pytest.approx(3.0)
    assert t.first_at == "2025-03-01T10:00:00.000Z" and t.last_at == "2025-03-02T09:30:00.000Z"

    assert list(summary.by_day) == ["2025-03-01", "2025-03-02"]
    assert summary.by_day["2025-03-01"].requests == 2
    assert summary.by_day["2025-03-02"].cost_usd == pytest.approx(0.041)
    assert summary.by_route["strong"].strong_share == 1.0
    assert summary.by_route["weak"].saving_usd == pytest.approx(0.049)
    # the parts add up to the whole
    assert sum(d.requests for d in summary.by_day.values()) == t.requests
    assert math.fsum(r.cost_usd for r in summary.by_route.values()) == pytest.approx(t.cost_usd)


def test_order_does_not_change_the_summary(make_decision):
    records = [make_decision(random.choice(["weak", "strong"])) for _ in range(300)]
    shuffled = records[:]
    random.Random(3).shuffle(shuffled)
    assert UsageSummary.from_records(records) == UsageSummary.from_records(shuffled)


def test_accepts_plain_dicts_and_rejects_bad_ones(make_decision):
    record = make_decision("strong")
    assert UsageSummary.from_records([record.model_dump()]) == UsageSummary.from_records([record])
    with pytest.raises(ValueError):
        UsageSummary.from_records([{**record.model_dump(), "route": "medium"}])


def test_conversations_and_affinity_are_counted(make_decision):
    records = [
        make_decision(route="strong", conversation_id="c1"),
        make_decision(route="strong", conversation_id="c1", reason="affinity:strong"),
        make_decision(route="weak", conversation_id="c2"),
        make_decision(route="weak"),
    ]
    totals = UsageSummary.from_records(records).totals
    assert (totals.conversations, totals.affinity) == (2, 1)
    assert UsageSummary.from_records(records).by_route["weak"].conversations == 1
