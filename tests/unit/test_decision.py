"""The decision record: ids, reasons and times are checked where the record is made."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hybrid_router.decision import DecisionRecord
from hybrid_router.ulid import is_ulid, new_ulid, ulid_time_ms


def make(**fields) -> DecisionRecord:
    base = dict(router_id="r", router_version="1", score=0.5, threshold=0.5, route="weak", weak_model="w",
                strong_model="s", model_used="w")
    return DecisionRecord(**{**base, **fields})


def test_ids_are_time_ordered_ulids() -> None:
    first, second = new_ulid(1_000), new_ulid(2_000)
    assert is_ulid(first) and is_ulid(second) and first < second
    assert ulid_time_ms(first) == 1_000
    assert is_ulid(make().decision_id)


@pytest.mark.parametrize("given, stored", [
    ("2024-11-27T14:46:00+05:30", "2024-11-27T09:16:00.000Z"),
    ("2024-11-27T09:16:00Z", "2024-11-27T09:16:00.000Z"),
    ("2024-11-27T09:16:00", "2024-11-27T09:16:00.000Z"),  # no offset: taken as UTC
    ("2024-11-27", "2024-11-27T00:00:00.000Z"),
])
def test_times_are_stored_in_one_utc_spelling(given: str, stored: str) -> None:
    record = make(created_at=given)
    assert record.created_at == stored and record.day == stored[:10]


@pytest.mark.parametrize("field, value", [
    ("created_at", "yesterday"), ("decision_id", "not-a-ulid"), ("reason", "because"), ("score", 1.5),
    ("route", "medium"),
])
def test_bad_fields_are_refused_with_the_field_named(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        make(**{field: value})


def test_fallback_reasons_carry_their_cause() -> None:
    assert make(reason="fallback:strong_timeout").reason == "fallback:strong_timeout"
