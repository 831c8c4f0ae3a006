"""The decision record: ids, reasons and times are checked where the record is made."""

from __future__ import annotations

from decimal import Decimal

import pytest
from boto3.dynamodb.types import TypeSerializer
from pydantic import ValidationError

from hybrid_router.decision import DecisionRecord, merge_served
from hybrid_router.ulid import is_ulid, new_ulid, ulid_time_ms


def make(**fields) -> DecisionRecord:
    base = dict(
        router_id="r",
        router_version="1",
        score=0.5,
        threshold=0.5,
        route="weak",
        weak_model="w",
        strong_model="s",
        model_used="w",
    )
    return DecisionRecord(**{**base, **fields})


def test_ids_are_time_ordered_ulids() -> None:
    first, second = new_ulid(1_000), new_ulid(2_000)
    assert is_ulid(first) and is_ulid(second) and first < second
    assert ulid_time_ms(first) == 1_000
    assert is_ulid(make().decision_id)


@pytest.mark.parametrize(
    "given, stored",
    [
        ("2024-11-27T14:46:00+05:30", "2024-11-27T09:16:00.000Z"),
        ("2024-11-27T09:16:00Z", "2024-11-27T09:16:00.000Z"),
        ("2024-11-27T09:16:00", "2024-11-27T09:16:00.000Z"),  # no offset: taken as UTC
        ("2024-11-27", "2024-11-27T00:00:00.000Z"),
    ],
)
def test_times_are_stored_in_one_utc_spelling(given: str, stored: str) -> None:
    record = make(created_at=given)
    assert record.created_at == stored and record.day == stored[:10]


@pytest.mark.parametrize(
    "field, value",
    [
        ("created_at", "yesterday"),
        ("decision_id", "not-a-ulid"),
        ("reason", "because"),
        ("score", 1.5),
        ("route", "medium"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make(**{field: value})


def test_fallback_reasons_carry_their_cause() -> None:
    assert make(reason="fallback:strong_timeout").reason == "fallback:strong_timeout"


@pytest.mark.parametrize(
    "field, value",
    [
        ("cost_usd", 1e200),
        ("cost_usd", float("inf")),
        ("strong_cost_usd", float("inf")),
        ("energy_wh", 1e7),
        ("cost_usd", 1_000_001.0),
        ("prompt_tokens", 10**40),
        ("completion_tokens", 10**9 + 1),
        ("generation_latency_ms", 1e9),
        ("router_latency_ms", float("inf")),
        ("queue_latency_ms", 1e300),
    ],
)
def test_numbers_out_of_any_real_range_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make(**{field: value})


@pytest.mark.parametrize(
    "field",
    [
        "generation_latency_ms",
        "router_latency_ms",
        "cost_usd",
        "strong_cost_usd",
        "energy_wh",
        "score",
        "queue_latency_ms",
    ],
)
def test_tiny_positive_numbers_dynamodb_cannot_hold_are_stored_as_zero(field: str) -> None:
    edges = make(prompt_tokens=10**9, cost_usd=1e6, energy_wh=1e6, router_latency_ms=1e8, score=1.0)
    assert (edges.prompt_tokens, edges.cost_usd, edges.energy_wh, edges.router_latency_ms) == (10**9, 1e6, 1e6, 1e8)
    assert getattr(make(**{field: 1e-200}), field) == 0.0
    assert getattr(make(**{field: 1e-100}), field) == 1e-100
    TypeSerializer().serialize(Decimal(repr(getattr(make(**{field: 1.2345678901234567e-100}), field))))


def test_a_merged_record_keeps_the_devices_account_and_never_less_than_was_served() -> None:
    served = make(
        route="strong",
        model_used="s",
        prompt_tokens=10,
        completion_tokens=20,
        cost_usd=0.002,
        strong_cost_usd=0.002,
        router_id="cloud",
        reason="forced",
    )
    device = make(
        decision_id=served.decision_id,
        route="strong",
        model_used="s",
        prompt_tokens=12,
        completion_tokens=18,
        cost_usd=0.001,
        strong_cost_usd=0.001,
        prompt="hi",
    )
    merged = merge_served(served, device)
    assert (merged.router_id, merged.reason, merged.prompt) == ("r", "routed", "hi")  # what the device knows
    assert (merged.prompt_tokens, merged.completion_tokens, merged.cost_usd) == (10, 20, 0.002)  # the cloud's
    assert merged.created_at == served.created_at
    gave_up = device.model_copy(update={"route": "weak", "reason": "fallback:strong_timeout", "cost_usd": 1e-6})
    local = merge_served(served, gave_up)
    assert local.route == "weak" and local.cost_usd == pytest.approx(0.002 + 1e-6)
    claimed = merge_served(served, device.model_copy(update={"route": "weak", "cost_usd": 0.0}))
    assert (claimed.route, claimed.reason, claimed.cost_usd) == ("strong", "forced", 0.002)
    assert merge_served(served, gave_up, device_first=True).route == "strong"
    kept = merge_served(served, device.model_copy(update={"reason": "affinity:strong", "conversation_id": "c-1"}))
    assert (kept.reason, kept.conversation_id) == ("affinity:strong", "c-1")  # the device's conversation fields


def test_experiment_fields_are_left_out_while_empty(make_decision) -> None:
    """A record outside an experiment has the fields it had before experiments existed (an older cloud, which
    refuses unknown fields, takes it); one inside an experiment round-trips them."""
    from hybrid_router.decision import (
        CACHE_FIELDS,
        CONVERSATION_FIELDS,
        EXPERIMENT_FIELDS,
        OPTIONAL_FIELDS,
        QUALITY_FIELDS,
        DecisionRecord,
    )

    plain = make_decision()
    assert not set(EXPERIMENT_FIELDS) & set(plain.model_dump()) and "experiment_id" not in plain.model_dump_json()
    assert set(plain.model_dump()) == set(DecisionRecord.model_fields) - {
        *OPTIONAL_FIELDS,
        "usage_estimated",
        "privacy_kinds",
    }
    tagged = make_decision(
        experiment_id="e1",
        arm="candidate",
        shadow_router_id="r",
        shadow_router_version="1",
        shadow_score=0.25,
        shadow_threshold=0.5,
        shadow_route="strong",
        shadow_router_latency_ms=0.4,
    )
    assert set(tagged.model_dump()) == set(DecisionRecord.model_fields) - {
        *QUALITY_FIELDS,
        *CONVERSATION_FIELDS,
        *CACHE_FIELDS,
        "usage_estimated",
        "privacy_kinds",
    }
    assert DecisionRecord.model_validate_json(tagged.model_dump_json()) == tagged


def test_the_quality_target_in_force_is_named_or_left_out(make_decision) -> None:
    """A record routed under a quality target names it; one without a target has the fields it had before targets
    existed, and both read back as written."""
    from hybrid_router.decision import DecisionRecord

    plain = make_decision()
    assert "quality_target" not in plain.model_dump() and "quality_target" not in plain.model_dump_json()
    assert DecisionRecord.model_validate_json(plain.model_dump_json()).quality_target is None
    targeted = make_decision(quality_target=0.9, quality_confidence=0.95)
    back = DecisionRecord.model_validate_json(targeted.model_dump_json())
    assert (back.quality_target, back.quality_confidence) == (0.9, 0.95)
    with pytest.raises(ValueError):
        make_decision(quality_target=1.5)


def test_privacy_kinds_are_left_out_while_empty_and_round_trip(make_decision) -> None:
    """A record without private data is what it was before the field existed (an older row or cloud reads it);
    one with private data names the kinds, under reason privacy:<kind>; a kind is a name, not a value."""
    from pydantic import ValidationError

    from hybrid_router.decision import DecisionRecord

    plain = make_decision()
    assert "privacy_kinds" not in plain.model_dump() and plain.privacy_kinds == []
    assert DecisionRecord.model_validate_json(plain.model_dump_json()).privacy_kinds == []
    private = make_decision(route="weak", reason="privacy:payment_card", privacy_kinds=["payment_card", "email"])
    again = DecisionRecord.model_validate_json(private.model_dump_json())
    assert (again.reason, again.privacy_kinds) == ("privacy:payment_card", ["payment_card", "email"])
    with pytest.raises(ValidationError, match="privacy_kinds"):
        make_decision(privacy_kinds=["4111 1111 1111 1111"])


def test_the_conversation_key_is_left_out_while_unset(make_decision) -> None:
    """A record outside any known conversation reads as before conversations were keyed; one inside keeps its key."""
    from hybrid_router.decision import DecisionRecord

    assert "conversation_id" not in make_decision().model_dump_json()
    keyed = make_decision(conversation_id="d-0123456789abcdef0123456789abcdef", reason="affinity:strong")
    assert keyed.model_dump()["conversation_id"] == "d-0123456789abcdef0123456789abcdef"
    assert DecisionRecord.model_validate_json(keyed.model_dump_json()) == keyed
