"""DynamoDecisionStore against a real moto server over HTTP (the DynamoDB wire protocol, boto3 unchanged)."""

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from hybrid_router.stores.dynamodb import (
    TABLE_SCHEMA,
    DecisionNotFound,
    DynamoDecisionStore,
    make_client,
)
from hybrid_router.ulid import new_ulid
from hybrid_router.usage import UsageSummary


@pytest.fixture
def store(dynamodb_client, decision_table):
    return DynamoDecisionStore(decision_table, client=dynamodb_client)


def test_table_matches_schema(dynamodb_client, decision_table):
    table = dynamodb_client.describe_table(TableName=decision_table)["Table"]
    assert table["KeySchema"] == TABLE_SCHEMA["KeySchema"]
    assert not table.get("GlobalSecondaryIndexes")  # every read is one device's partition: no index to pay for
    ttl = dynamodb_client.describe_time_to_live(TableName=decision_table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"


def test_put_twice_counts_duplicates_and_round_trips(store, make_decision):
    records = [
        make_decision("strong" if i % 3 == 0 else "weak", tenant_id="acme", device_id="laptop-1") for i in range(30)
    ]
    first = store.put_records(records)
    assert (first.accepted, first.duplicates, first.failed) == (30, 0, [])
    again = store.put_records(records[:10] + records[:2])  # re-sent, and repeated inside one batch
    assert (again.accepted, again.duplicates, again.failed) == (0, 12, [])
    stored = store.records_for_device("acme", "laptop-1")
    assert stored == sorted(records, key=lambda r: r.decision_id)  # every field survives, ULID order
    assert store.records_for_device("acme", "laptop-2") == []


def test_owner_is_stamped_from_identity_not_body(store, make_decision):
    record = make_decision(tenant_id="local", device_id="local")
    assert store.put_records([record], owner=("acme", "pi-7")).accepted == 1
    (stored,) = store.records_for_device("acme", "pi-7")
    assert (stored.tenant_id, stored.device_id, stored.decision_id) == ("acme", "pi-7", record.decision_id)
    assert store.records_for_device("local", "local") == []


def test_invalid_records_fail_one_by_one(store, make_decision):
    good = make_decision()
    bad_route = {**make_decision().model_dump(), "route": "medium"}
    bad_id = {**make_decision().model_dump(), "decision_id": "not-a-ulid"}
    result = store.put_records([good.model_dump(), bad_route, bad_id])
    assert result.accepted == 1 and result.duplicates == 0
    assert [d for d, _ in result.failed] == [bad_route["decision_id"], "not-a-ulid"]
    assert "route" in result.failed[0][1] and "decision_id" in result.failed[1][1]


def test_usage_equals_summary_of_inputs_and_since_window(store, make_decision):
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        make_decision(
            "strong" if i % 4 == 0 else "weak", at=now - timedelta(hours=7 * i), tenant_id="t1", device_id="d1"
        )
        for i in range(40)
    ]
    store.put_records(records)
    assert store.usage("t1", "d1") == UsageSummary.from_records(records)
    since = now - timedelta(days=3)
    recent = [r for r in records if r.created_at >= since.isoformat(timespec="milliseconds").replace("+00:00", "Z")]
    assert 0 < len(recent) < len(records)
    assert store.usage("t1", "d1", since=since) == UsageSummary.from_records(recent)
    day = records[5].day
    assert store.usage("t1", "d1", since=day).totals.requests == sum(r.day >= day for r in records)


def test_query_paginates(dynamodb_client, decision_table, make_decision):
    store = DynamoDecisionStore(decision_table, client=dynamodb_client, query_page_size=7)
    records = [make_decision(tenant_id="t", device_id="d") for _ in range(50)]
    assert store.put_records(records).accepted == 50
    assert [r.decision_id for r in store.records_for_device("t", "d")] == sorted(r.decision_id for r in records)


def test_feedback_needs_the_decision_on_that_device(store, make_decision):
    record = make_decision(tenant_id="t", device_id="d")
    store.put_records([record])
    saved = store.put_feedback("t", "d", record.decision_id, 1, "good answer")
    assert saved["rating"] == 1 and saved["comment"] == "good answer"
    store.put_feedback("t", "d", record.decision_id, -1)  # a new rating replaces the old one
    assert store.get_feedback("t", "d", record.decision_id)["rating"] == -1
    with pytest.raises(DecisionNotFound):
        store.put_feedback("t", "d", make_decision().decision_id, 1)
    with pytest.raises(DecisionNotFound):  # someone else's device
        store.put_feedback("t", "other-device", record.decision_id, 1)
    with pytest.raises(ValueError):
        store.put_feedback("t", "d", record.decision_id, "five")
    # feedback items do not show up as decisions, nor in usage
    assert store.records_for_device("t", "d") == [record]


class _ThrottlingProxy(BaseHTTPRequestHandler):
    """Speaks DynamoDB's wire protocol: throttles every other PutItem, forwards everything to moto."""

    upstream = ""
    http = httpx.Client(timeout=30)
    counter = 0
    throttled = 0
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        target = self.headers.get("X-Amz-Target", "")
        with self.lock:
            type(self).counter += 1
            throttle = target.endswith("PutItem") and self.counter % 2 == 0
            if throttle:
                type(self).throttled += 1
        if throttle:
            payload = json.dumps(
                {
                    "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                    "message": "The level of configured provisioned throughput for the table was exceeded.",
                }
            ).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/x-amz-json-1.0")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        answer = self.http.post(self.upstream + self.path, content=body, headers=headers, timeout=30)
        self.send_response(answer.status_code)
        for key, value in answer.headers.items():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


def test_throttled_puts_are_retried_and_nothing_is_lost(
    dynamodb_endpoint, dynamodb_client, decision_table, make_decision
):
    _ThrottlingProxy.upstream = dynamodb_endpoint
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # botocore's own retries off, so the store's backoff does the work
        client = make_client(f"http://127.0.0.1:{server.server_port}", max_attempts=1)
        store = DynamoDecisionStore(
            decision_table, client=client, base_delay_s=0.001, max_delay_s=0.01, max_attempts=30
        )  # 8 threads share one every-other throttle
        records = [make_decision(tenant_id="t", device_id="d") for _ in range(40)]
        result = store.put_records(records)
        assert (result.accepted, result.duplicates, result.failed) == (40, 0, [])
        assert _ThrottlingProxy.throttled >= 20 and store.retries >= 20
    finally:
        server.shutdown()
        server.server_close()
    direct = DynamoDecisionStore(decision_table, client=dynamodb_client)
    assert {r.decision_id for r in direct.records_for_device("t", "d")} == {r.decision_id for r in records}


def test_unreachable_table_reports_failures_not_accepts(dynamodb_client, make_decision):
    store = DynamoDecisionStore("no-such-table", client=dynamodb_client, max_attempts=2, base_delay_s=0.001)
    result = store.put_records([make_decision(), make_decision()])
    assert result.accepted == 0 and len(result.failed) == 2
    assert all("ResourceNotFound" in error for _, error in result.failed)


def test_window_uses_created_at_even_when_the_id_is_older(store, make_decision):
    """An id is made when the request is planned; created_at when a long answer ends, minutes later."""
    planned = datetime(2025, 3, 1, 11, 58, tzinfo=UTC)
    record = make_decision(at="2025-03-01T12:02:00Z", tenant_id="t9", device_id="d9")
    record = record.model_copy(update={"decision_id": new_ulid(int(planned.timestamp() * 1000))})
    store.put_records([record])
    assert store.usage("t9", "d9", since="2025-03-01T12:00:00Z").totals.requests == 1
    assert store.usage("t9", "d9", until="2025-03-01T12:00:00Z").totals.requests == 0


def test_the_quality_target_in_force_round_trips(store, make_decision):
    """A record names the quality target it was routed under; DynamoDB keeps it, and a record without one reads
    back without it."""
    targeted = make_decision(tenant_id="acme", device_id="q-1", quality_target=0.9, quality_confidence=0.95)
    plain = make_decision(tenant_id="acme", device_id="q-1")
    assert store.put_records([targeted, plain]).accepted == 2
    stored = {r.decision_id: r for r in store.records_for_device("acme", "q-1")}
    assert (stored[targeted.decision_id].quality_target, stored[targeted.decision_id].quality_confidence) == (0.9, 0.95)
    assert stored[targeted.decision_id] == targeted and stored[plain.decision_id].quality_target is None


def test_both_stores_answer_the_decision_store_protocol_alike(store, make_decision, tmp_path) -> None:
    """The device's SQLite log and one device's partition of the DynamoDB table give the same records, ratings
    and usage, so usage, dashboards and experiment reports come from one copy of the code."""
    from hybrid_router.dashboard import build
    from hybrid_router.feedback import FeedbackRequest
    from hybrid_router.local_quality import rating_units
    from hybrid_router.stores.protocol import DecisionStore
    from hybrid_router.stores.sqlite_log import DecisionLog

    records = [make_decision(route="strong" if i % 3 else "weak", tenant_id="t", device_id="d") for i in range(9)]
    with DecisionLog(tmp_path / "device.sqlite3") as log:
        for record in records:
            log.append(record)
        log.rate(FeedbackRequest(decision_id=records[0].decision_id, rating=-1, scale="thumbs"))
        store.put_records(records)
        store.put_feedback("t", "d", records[0].decision_id, -1, scale="thumbs")
        sides: list[DecisionStore] = [log, store.for_device("t", "d")]
        device, cloud = ([r.decision_id for r in side.records()] for side in sides)
        assert sorted(device) == sorted(cloud) == sorted(r.decision_id for r in records)
        assert rating_units(log.ratings()) == rating_units(sides[1].ratings()) == {records[0].decision_id: 0.0}
        assert log.usage().totals == sides[1].usage().totals
        assert (
            build(log.records(), log.ratings(), "t").local_quality
            == build(sides[1].records(), sides[1].ratings(), "t").local_quality
        )


def test_the_conversation_key_round_trips(store, make_decision):
    """A record keeps its conversation's key (never the text); one without a key reads back without it."""
    keyed = make_decision(tenant_id="acme", device_id="c-1", conversation_id="d-" + "0" * 32, reason="affinity:strong")
    plain = make_decision(tenant_id="acme", device_id="c-1")
    assert store.put_records([keyed, plain]).accepted == 2
    stored = {r.decision_id: r for r in store.records_for_device("acme", "c-1")}
    assert stored[keyed.decision_id] == keyed and stored[plain.decision_id].conversation_id is None
