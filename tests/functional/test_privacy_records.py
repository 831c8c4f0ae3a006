"""privacy_kinds in both stores: the device's SQLite log and DynamoDB (a real moto server) keep the kinds of a
private record, and a record without private data is stored as records were before the field existed, so old rows
and new ones read alike."""

from __future__ import annotations

from hybrid_router.stores.dynamodb import DynamoDecisionStore, device_pk
from hybrid_router.stores.sqlite_log import DecisionLog


def test_sqlite_log_keeps_the_kinds_and_reads_old_rows(tmp_path, make_decision) -> None:
    private = make_decision(reason="privacy:api_key", privacy_kinds=["api_key", "email"])
    plain = make_decision()
    with DecisionLog(tmp_path / "decisions.sqlite3") as log:
        log.append(private)
        log.append(plain)
        with log._transaction("read") as db:
            rows = dict(db.execute("SELECT decision_id, record FROM decisions"))
        assert '"privacy_kinds"' not in rows[plain.decision_id]  # as a row written before the field existed
        assert log.get(private.decision_id).privacy_kinds == ["api_key", "email"]
        assert log.get(plain.decision_id).privacy_kinds == []


def test_dynamodb_keeps_the_kinds_and_reads_items_without_them(dynamodb_client, decision_table, make_decision):
    store = DynamoDecisionStore(decision_table, client=dynamodb_client)
    private = make_decision(reason="privacy:payment_card", privacy_kinds=["payment_card"], tenant_id="t", device_id="d")
    plain = make_decision(tenant_id="t", device_id="d")
    assert store.put_records([private, plain]).accepted == 2
    item = dynamodb_client.get_item(
        TableName=decision_table, Key={"pk": {"S": device_pk("t", "d")}, "sk": {"S": f"DECISION#{plain.decision_id}"}}
    )["Item"]
    assert "privacy_kinds" not in item
    stored = {r.decision_id: r for r in store.records_for_device("t", "d")}
    assert stored[private.decision_id].privacy_kinds == ["payment_card"]
    assert stored[plain.decision_id] == plain
    assert store.usage("t", "d").totals.privacy_kinds == {"payment_card": 1}
