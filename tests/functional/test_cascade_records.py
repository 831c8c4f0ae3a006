"""A cascade decision record syncs to DynamoDB (real moto server over HTTP) and reads back field for field."""

from __future__ import annotations

from hybrid_router.decision import ESCALATED, KEPT
from hybrid_router.stores.dynamodb import DynamoDecisionStore
from hybrid_router.usage import UsageSummary


def test_cascade_records_round_trip_through_dynamodb(dynamodb_client, decision_table, make_decision) -> None:
    store = DynamoDecisionStore(decision_table, client=dynamodb_client)
    records = [
        make_decision(
            "weak",
            tenant_id="acme",
            device_id="pi",
            reason=KEPT,
            draft_tokens=9,
            draft_latency_ms=412.5,
            confidence=0.83,
            escalated=False,
        ),
        make_decision(
            "strong",
            tenant_id="acme",
            device_id="pi",
            reason=ESCALATED,
            draft_tokens=48,
            draft_latency_ms=1310.0,
            confidence=0.04,
            escalated=True,
            energy_wh=0.0036,
        ),
        make_decision("strong", tenant_id="acme", device_id="pi"),  # no draft: the defaults
    ]
    result = store.put_records([r.model_dump() for r in records])
    assert (result.accepted, result.failed) == (3, [])
    stored = store.records_for_device("acme", "pi")
    assert stored == sorted(records, key=lambda r: r.decision_id)
    assert isinstance(stored[0].draft_tokens, int) and isinstance(stored[0].escalated, bool)
    totals = UsageSummary.from_records(stored).totals
    assert (totals.drafts, totals.escalations) == (2, 1)
