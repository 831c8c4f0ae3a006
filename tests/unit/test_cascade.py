"""Cascade mode's decision: the band, the confidence signals, the policy file, and what records and usage keep."""

from __future__ import annotations

import json
import math
import random

import pytest

from hybrid_router.cascade import (
    POLICY_FILE,
    CascadeError,
    CascadePolicy,
    answer_confidence,
    load_policy,
    verifier_inputs,
)
from hybrid_router.decision import ESCALATED, KEPT, DecisionRecord
from hybrid_router.stores.sqlite_log import DecisionLog
from hybrid_router.usage import UsageSummary

SURE = {"mean_logprob": -0.05, "min_logprob": -0.2, "first_token_prob": 0.9, "reply_tokens": 4, "span": "answer"}
UNSURE = {"mean_logprob": -1.5, "min_logprob": -4.0, "first_token_prob": 0.2, "reply_tokens": 48, "span": "completion"}


def test_the_band_settles_clear_cases_and_drafts_in_between() -> None:
    policy = CascadePolicy(low=0.2, high=0.6)
    assert [policy.pre_route(s) for s in (0.0, 0.1999, 0.2, 0.4, 0.5999, 0.6, 1.0)] == [
        "weak",
        "weak",
        "draft",
        "draft",
        "draft",
        "strong",
        "strong",
    ]


@pytest.mark.parametrize(
    "signal, sure, unsure",
    [
        ("mean_logprob", math.exp(-0.05), math.exp(-1.5)),
        ("min_logprob", math.exp(-0.2), math.exp(-4.0)),
    ],
)
def test_logprob_signals_are_token_probabilities(signal: str, sure: float, unsure: float) -> None:
    policy = CascadePolicy(0.0, 1.0, signal=signal, min_confidence=0.5)  # type: ignore[arg-type]
    assert policy.confidence(SURE, 48) == pytest.approx(sure)
    assert policy.confidence(UNSURE, 48) == pytest.approx(unsure)
    assert policy.keeps(policy.confidence(SURE, 48)) and not policy.keeps(policy.confidence(UNSURE, 48))


def test_an_empty_draft_is_as_unsure_as_can_be() -> None:
    features = answer_confidence([], "")
    for signal in ("mean_logprob", "min_logprob", "verifier"):
        policy = load_policy().with_overrides(signal=signal)
        assert policy.confidence(features, 48) < policy.confidence(SURE, 48)


def test_the_shipped_policy_loads_and_its_verifier_prefers_a_sure_draft() -> None:
    policy = load_policy()
    assert policy.low <= policy.high and policy.signal in ("mean_logprob", "min_logprob", "verifier")
    verifier = policy.with_overrides(signal="verifier")
    assert 0.0 < verifier.confidence(UNSURE, 48) < verifier.confidence(SURE, 48) < 1.0
    assert POLICY_FILE.name == "cascade.toml"


def test_the_cascade_score_orders_prompts_as_the_policy_decides() -> None:
    """policy.score >= pivot is exactly the product's decision (pre-route, then keep or escalate)."""
    rng = random.Random(3)
    policy = CascadePolicy(low=0.25, high=0.55, min_confidence=0.4)
    for _ in range(2000):
        score, confidence = rng.random(), rng.random()
        settled = policy.pre_route(score)
        strong = settled == "strong" or (settled == "draft" and not policy.keeps(confidence))
        if abs(confidence - policy.min_confidence) > 1e-9:
            assert (policy.score(score, confidence) >= policy.pivot) == strong


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"low": 0.7, "high": 0.3}, "above high"),
        ({"low": -0.1, "high": 0.3}, "low must be in"),
        ({"low": 0.1, "high": 0.3, "signal": "vibes"}, "signal must be"),
        ({"low": 0.1, "high": 0.3, "signal": "verifier"}, "verifier weights"),
        ({"low": 0.1, "high": 0.3, "min_confidence": float("nan")}, "min_confidence"),
    ],
)
def test_a_bad_policy_is_a_typed_error(fields: dict, message: str) -> None:
    with pytest.raises(CascadeError, match=message):
        CascadePolicy(**fields)


def test_a_bad_policy_file_names_itself(tmp_path) -> None:
    path = tmp_path / "cascade.toml"
    path.write_text('signal = "min_logprob"\n[band]\nlow = 0.1\n', encoding="utf-8")
    with pytest.raises(CascadeError, match="cascade.toml"):
        load_policy(path)


def test_verifier_inputs_mark_a_draft_cut_at_the_limit() -> None:
    assert verifier_inputs(UNSURE, 48)[-1] == 1.0 and verifier_inputs(UNSURE, 64)[-1] == 0.0
    assert verifier_inputs(SURE, 48)[4] == 1.0


def _cascade_record(make_decision, route: str, reason: str, cost: float, draft_ms: float) -> DecisionRecord:
    return make_decision(
        route,
        reason=reason,
        cost_usd=cost,
        draft_tokens=12,
        draft_latency_ms=draft_ms,
        confidence=0.3,
        escalated=reason != KEPT,
    )


def test_records_without_draft_fields_read_as_before(make_decision) -> None:
    old = make_decision("weak").model_dump()
    for name in ("draft_tokens", "draft_latency_ms", "confidence", "escalated"):
        old.pop(name)
    record = DecisionRecord.model_validate_json(json.dumps(old))
    assert (record.draft_tokens, record.draft_latency_ms, record.confidence, record.escalated) == (0, 0.0, None, False)


def test_cascade_records_keep_their_draft_in_the_device_log(tmp_path, make_decision) -> None:
    record = _cascade_record(make_decision, "strong", ESCALATED, 0.002, 850.0)
    with DecisionLog(tmp_path / "decisions.sqlite3") as log:
        log.append(record)
        assert log.get(record.decision_id) == record


def test_a_confidence_outside_zero_one_is_refused(make_decision) -> None:
    with pytest.raises(ValueError):
        make_decision("weak", reason=KEPT, confidence=1.5)
    with pytest.raises(ValueError, match="reason"):
        make_decision("weak", reason="cascade:maybe")


def test_usage_counts_drafts_escalations_and_their_cost(make_decision) -> None:
    records = [
        _cascade_record(make_decision, "weak", KEPT, 0.0, 400.0),
        _cascade_record(make_decision, "strong", ESCALATED, 0.002, 900.0),
        _cascade_record(make_decision, "strong", ESCALATED, 0.003, 600.0),
        _cascade_record(make_decision, "weak", "fallback:strong_unreachable", 0.0, 500.0),  # escalated, then kept
        make_decision("strong", cost_usd=0.01),
    ]
    totals = UsageSummary.from_records(records).totals
    assert (totals.drafts, totals.escalations) == (4, 3)
    assert totals.escalation_cost_usd == pytest.approx(0.005)
    assert totals.discarded_draft_ms == pytest.approx(1500.0)
