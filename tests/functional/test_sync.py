"""Device -> cloud sync end to end: DecisionLog (SQLite) -> httpx -> the real cloud API app (uvicorn, real socket)
-> DynamoDecisionStore -> moto server. A small HTTP proxy in front of the API slows it down, drops connections
after the API stored a batch, or answers 503/429, the way a flaky network or gateway would."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import uvicorn

from edge_client.sync import SyncAuthError, SyncError, _acknowledged, sync_decisions
from hybrid_router.api.app import create_app
from hybrid_router.api.identity import parse_key_map
from hybrid_router.api.settings import ApiSettings
from hybrid_router.feedback import FeedbackRequest
from hybrid_router.stores.dynamodb import DynamoDecisionStore, device_pk
from hybrid_router.stores.sqlite_log import DecisionLog

API_KEY = "device-key-1"
TENANT, DEVICE = "acme", "laptop-7"


class _Flaky(BaseHTTPRequestHandler):
    """Forwards to the API. Per server: `delay_s` after the API answered; `drop` answers to swallow (the API has
    stored the batch, the device never hears back); `errors` [(status, headers)] answered instead of forwarding."""

    protocol_version = "HTTP/1.1"

    def do_POST(self):  # noqa: N802
        state = self.server.state
        with state["lock"]:
            state["active"] += 1
        try:
            self._forward(state)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the device went away (killed): the API may still have stored the batch
        finally:
            with state["lock"]:
                state["active"] -= 1

    def _forward(self, state):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with state["lock"]:
            state["requests"] += 1
            error = state["errors"].pop(0) if state["errors"] else None
        if error:
            status, headers = error
            payload = json.dumps({"error": {"message": "injected", "type": "server_error"}}).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-api-key")}
        answer = state["http"].post(state["upstream"] + self.path, content=body, headers=headers)
        time.sleep(state["delay_s"])
        with state["lock"]:
            drop = state["drop"] > 0
            state["drop"] -= drop
        if drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(answer.status_code)
        for key in ("content-type", "retry-after"):
            if key in answer.headers:
                self.send_header(key, answer.headers[key])
        self.send_header("Content-Length", str(len(answer.content)))
        self.end_headers()
        self.wfile.write(answer.content)

    def log_message(self, *args):
        pass


@pytest.fixture
def cloud(dynamodb_client, decision_table):
    """The cloud API (records routes) on uvicorn, behind the flaky proxy. Yields (proxy_url, store, proxy_state)."""
    store = DynamoDecisionStore(decision_table, client=dynamodb_client)
    settings = ApiSettings(table_name=decision_table, api_keys=parse_key_map(f"{API_KEY}={TENANT}/{DEVICE}"))
    app = create_app(settings, groups=("records",), store=store)
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    api = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    api_thread = threading.Thread(target=api.run, kwargs={"sockets": [sock]}, daemon=True)
    api_thread.start()
    while not api.started:
        time.sleep(0.02)
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    proxy.daemon_threads = True
    proxy.state = {
        "upstream": f"http://127.0.0.1:{sock.getsockname()[1]}",
        "http": httpx.Client(timeout=60),
        "lock": threading.Lock(),
        "requests": 0,
        "active": 0,
        "delay_s": 0.0,
        "drop": 0,
        "errors": [],
    }
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_port}", store, proxy.state
    finally:
        proxy.shutdown()
        proxy.server_close()
        proxy.state["http"].close()
        api.should_exit = True
        api_thread.join(timeout=10)


@pytest.fixture
def log(tmp_path):
    with DecisionLog(tmp_path / "device.db") as log:
        yield log


def _cloud_ids(store):
    return [r.decision_id for r in store.records_for_device(TENANT, DEVICE)]


def test_sync_end_to_end_and_again_is_a_no_op(cloud, log, make_decision):
    url, store, _ = cloud
    records = [make_decision("strong" if i % 3 == 0 else "weak") for i in range(230)]
    log.append_many(records)
    report = sync_decisions(log, url, api_key=API_KEY, batch_size=50)
    assert (report.sent, report.accepted, report.duplicates, report.failed) == (230, 230, 0, [])
    assert (report.batches, report.remaining) == (5, 0)
    stored = store.records_for_device(TENANT, DEVICE)
    assert [r.model_copy(update={"tenant_id": "local", "device_id": "local"}) for r in stored] == sorted(
        records, key=lambda r: r.decision_id
    )
    assert store.usage(TENANT, DEVICE) == log.usage()
    again = sync_decisions(log, url, api_key=API_KEY, batch_size=50)
    assert (again.sent, again.batches) == (0, 0)


def test_dropped_connection_after_store_resends_as_duplicates(cloud, log, make_decision):
    url, store, state = cloud
    log.append_many([make_decision() for _ in range(60)])
    state["drop"] = 2  # the first batch is stored twice over, the device hears nothing twice
    report = sync_decisions(log, url, api_key=API_KEY, batch_size=25, base_delay_s=0.01)
    assert report.retries == 2
    assert (report.accepted, report.duplicates, report.remaining) == (35, 25, 0)
    assert sorted(_cloud_ids(store)) == sorted(r.decision_id for r in log.records())


def test_transient_errors_are_retried_with_retry_after(cloud, log, make_decision):
    url, store, state = cloud
    log.append_many([make_decision() for _ in range(10)])
    state["errors"] = [(503, {}), (429, {"Retry-After": "0.2"}), (502, {})]
    slept = []
    report = sync_decisions(
        log, url, api_key=API_KEY, batch_size=10, base_delay_s=0.01, sleep=lambda s: (slept.append(s), time.sleep(s))
    )
    assert (report.retries, report.accepted, report.remaining) == (3, 10, 0)
    assert slept[1] >= 0.2  # Retry-After honoured
    assert len(_cloud_ids(store)) == 10


def test_gives_up_after_max_retries_keeping_everything_pending(cloud, log, make_decision):
    url, store, state = cloud
    log.append_many([make_decision() for _ in range(5)])
    state["errors"] = [(503, {})] * 3
    with pytest.raises(SyncError, match="gave up after 3 attempts") as caught:
        sync_decisions(log, url, api_key=API_KEY, max_retries=2, base_delay_s=0.001)
    assert caught.value.report.remaining == 5
    assert log.pending_count() == 5 and _cloud_ids(store) == []


def test_an_https_url_to_a_plain_http_cloud_stops_at_once_with_a_tls_message(cloud, log, make_decision):
    url, store, _ = cloud
    log.append_many([make_decision() for _ in range(3)])
    slept = []
    with pytest.raises(SyncError, match="TLS handshake with https://.* failed .*scheme") as caught:
        sync_decisions(log, url.replace("http://", "https://"), api_key=API_KEY, sleep=slept.append)
    assert slept == [] and caught.value.report.retries == 0  # a wrong scheme is not retried
    assert log.pending_count() == 3 and _cloud_ids(store) == []


def test_bad_api_key_stops_at_once(cloud, log, make_decision):
    url, _, state = cloud
    log.append_many([make_decision() for _ in range(5)])
    with pytest.raises(SyncAuthError, match="403"):
        sync_decisions(log, url, api_key="wrong", base_delay_s=0.001)
    with pytest.raises(SyncAuthError, match="401"):
        sync_decisions(log, url, api_key=None, base_delay_s=0.001)
    assert state["requests"] == 2 and log.pending_count() == 5


def test_unreachable_cloud_is_a_clear_error(log, make_decision):
    log.append(make_decision())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"  # bound, never listening
        with pytest.raises(SyncError, match="ConnectError"):
            sync_decisions(log, dead, api_key=API_KEY, max_retries=1, base_delay_s=0.001)
    assert log.pending_count() == 1


def test_an_answer_that_does_not_add_up_marks_nothing():
    ids = ["01J0000000000000000000000A", "01J0000000000000000000000B"]
    assert _acknowledged({"accepted": 1, "duplicates": 0, "failed": [{"decision_id": ids[1], "error": "x"}]}, ids) == {
        ids[1]: "x"
    }
    with pytest.raises(SyncError, match="does not match"):
        _acknowledged({"accepted": 1, "duplicates": 0, "failed": []}, ids)
    with pytest.raises(SyncError, match="unknown ids"):
        _acknowledged({"accepted": 1, "duplicates": 0, "failed": [["01J000000000000000000000ZZ", "x"]]}, ids)
    with pytest.raises(SyncError, match="unusable"):
        _acknowledged({"ok": True}, ids)


def _run_sync(db, url, batch_size):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_client.sync",
            "--db",
            str(db),
            "--url",
            url,
            "--api-key",
            API_KEY,
            "--batch-size",
            str(batch_size),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _count_in_cloud(store):
    """Decision items on the device's partition (Select=COUNT, paginated: moto's full Query is slow)."""
    params = {
        "TableName": store.table_name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :d)",
        "ExpressionAttributeValues": {":pk": {"S": device_pk(TENANT, DEVICE)}, ":d": {"S": "DECISION#"}},
        "Select": "COUNT",
    }
    total, start = 0, None
    while True:
        page = store.client.query(**params, **({"ExclusiveStartKey": start} if start else {}))
        total += page["Count"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return total


def _missing_in_cloud(store, ids):
    missing = []
    for chunk in range(0, len(ids), 100):
        keys = [
            {"pk": {"S": device_pk(TENANT, DEVICE)}, "sk": {"S": f"DECISION#{i}"}} for i in ids[chunk : chunk + 100]
        ]
        request = {store.table_name: {"Keys": keys, "ProjectionExpression": "decision_id"}}
        found = set()
        while request:
            page = store.client.batch_get_item(RequestItems=request)
            found |= {item["decision_id"]["S"] for item in page["Responses"].get(store.table_name, [])}
            request = page.get("UnprocessedKeys") or None
        missing += [i for i in ids[chunk : chunk + 100] if i not in found]
    return missing


def _wait_until_quiet(state, quiet_s=1.0):
    seen = None
    while True:
        with state["lock"]:
            now = (state["requests"], state["active"])
        if now == seen and now[1] == 0:
            return
        seen = now
        time.sleep(quiet_s)


def _synced(db):
    with DecisionLog(db) as log:
        return log.count() - log.pending_count()


def test_kill_mid_sync_loses_nothing_and_duplicates_nothing(cloud, tmp_path, make_decision):
    """THE KILL TEST: SIGKILL a real sync process twice mid-run, then let a third finish."""
    url, store, state = cloud
    db = tmp_path / "device.db"
    with DecisionLog(db) as log:
        records = [make_decision("strong" if i % 4 == 0 else "weak") for i in range(2000)]
        assert log.append_many(records) == 2000
    state["delay_s"] = 0.05  # the API has stored the batch; the answer is slow: a kill often lands right here
    for kill_after in (300, 900):
        proc = _run_sync(db, url, batch_size=20)
        deadline = time.monotonic() + 120
        while _synced(db) < kill_after and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, f"sync ended before it could be killed: {proc.communicate()}"
        time.sleep(0.03)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL
        assert kill_after <= _synced(db) < 2000
    _wait_until_quiet(state)  # a killed device's last batch may still be on its way into the table
    in_cloud_before, synced_before = _count_in_cloud(store), _synced(db)
    finish = _run_sync(db, url, batch_size=20)
    out, err = finish.communicate(timeout=300)
    assert finish.returncode == 0, err
    report = json.loads(out)
    assert report["remaining"] == 0 and report["failed"] == []
    assert report["sent"] == 2000 - synced_before
    assert report["accepted"] == 2000 - in_cloud_before
    assert report["duplicates"] == in_cloud_before - synced_before  # stored, killed before the device marked them

    assert _count_in_cloud(store) == 2000  # nothing twice (and nothing that is not in the log) ...
    assert _missing_in_cloud(store, [r.decision_id for r in records]) == []  # ... and nothing lost
    with DecisionLog(db) as log:
        assert log.pending_count() == 0 and log.count() == 2000


def test_device_settings_drive_sync_from_env(cloud, tmp_path, make_decision):
    """`python -m edge_client.sync` with no options reads the device settings (HYBRID_ROUTER_* env), and
    sync_decisions(settings) (what `hybrid-router sync` calls) does the same in-process."""
    from edge_client.config import load_settings

    url, store, _ = cloud
    env = {
        **os.environ,
        "HYBRID_ROUTER_CONFIG": str(tmp_path / "absent.toml"),
        "HYBRID_ROUTER_DATA_DIR": str(tmp_path),
        "HYBRID_ROUTER_CLOUD_URL": url,
        "HYBRID_ROUTER_API_KEY": API_KEY,
        "HYBRID_ROUTER_SYNC_BATCH_SIZE": "7",
    }
    settings = load_settings(env=env).settings
    with DecisionLog(settings.decision_log_path) as log:
        log.append_many([make_decision() for _ in range(10)])
    done = subprocess.run(
        [sys.executable, "-m", "edge_client.sync", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["accepted"], report["batches"], report["remaining"]) == (10, 2, 0)

    with DecisionLog(settings.decision_log_path) as log:
        log.append_many([make_decision() for _ in range(3)])
    result = sync_decisions(settings)
    assert (result.accepted, result.remaining) == (3, 0)
    assert "synced 3 of 3" in str(result)
    assert _count_in_cloud(store) == 13

    with DecisionLog(settings.decision_log_path) as log:
        log.append(make_decision())
    bad = subprocess.run(
        [sys.executable, "-m", "edge_client.sync"],
        env={**env, "HYBRID_ROUTER_API_KEY": "nope"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 3 and "refused the API key" in bad.stderr and "Traceback" not in bad.stderr
    assert _count_in_cloud(store) == 13


# ------------------------------------------------------------------------------------------------ ratings


def _rate(log, decision_id, rating, scale=None, comment=None):
    return log.rate(FeedbackRequest(decision_id=decision_id, rating=rating, scale=scale, comment=comment))


def _cloud_feedback(store):
    """Every feedback item on the device's partition, read straight from DynamoDB."""
    page = store.client.query(
        TableName=store.table_name,
        ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :f)",
        ExpressionAttributeValues={":pk": {"S": device_pk(TENANT, DEVICE)}, ":f": {"S": "FEEDBACK#"}},
    )
    return {
        item["decision_id"]["S"]: (int(item["rating"]["N"]), item.get("comment", {}).get("S")) for item in page["Items"]
    }


def test_ratings_follow_their_decisions_and_a_re_sync_duplicates_nothing(cloud, log, make_decision):
    url, store, state = cloud
    records = [make_decision() for _ in range(5)]
    log.append_many(records)
    _rate(log, records[0].decision_id, 5, comment="spot on")
    _rate(log, records[3].decision_id, -1)
    # one sync: the decisions go first, so the cloud knows the ids the ratings name
    report = sync_decisions(log, url, api_key=API_KEY, batch_size=2)
    assert (report.accepted, report.feedback_sent, report.feedback_accepted, report.feedback_failed) == (5, 2, 2, [])
    assert report.feedback_remaining == 0 and "ratings: 2 of 2 sent accepted, 0 left pending" in str(report)
    assert _cloud_feedback(store) == {records[0].decision_id: (5, "spot on"), records[3].decision_id: (-1, None)}
    assert log.feedback(records[0].decision_id).synced_at is not None

    again = sync_decisions(log, url, api_key=API_KEY)
    assert (again.sent, again.feedback_sent) == (0, 0)
    # a new rating replaces the old one; the cloud hears it once more but holds one rating per decision, even when
    # the device never hears back after the cloud stored it and sends it again
    _rate(log, records[0].decision_id, 2, comment="on reflection, wrong")
    state["drop"] = 1
    resent = sync_decisions(log, url, api_key=API_KEY, base_delay_s=0.01)
    assert (resent.retries, resent.feedback_sent, resent.feedback_accepted, resent.feedback_remaining) == (1, 1, 1, 0)
    assert _cloud_feedback(store) == {
        records[0].decision_id: (2, "on reflection, wrong"),
        records[3].decision_id: (-1, None),
    }


def test_a_rating_of_1_reaches_the_cloud_with_its_scale(cloud, log, make_decision):
    url, store, _ = cloud
    records = [make_decision() for _ in range(2)]
    log.append_many(records)
    _rate(log, records[0].decision_id, 1, scale="thumbs")
    _rate(log, records[1].decision_id, 1, scale="stars")
    assert sync_decisions(log, url, api_key=API_KEY).feedback_accepted == 2
    assert [store.get_feedback(TENANT, DEVICE, r.decision_id)["scale"] for r in records] == ["thumbs", "stars"]


def test_a_rating_waits_while_its_decision_is_not_in_the_cloud(cloud, log, make_decision):
    url, store, state = cloud
    record = make_decision()
    log.append(record)
    _rate(log, record.decision_id, 4)
    state["errors"] = [(503, {})] * 2  # the decisions batch fails: no rating may go before its decision
    with pytest.raises(SyncError, match="gave up"):
        sync_decisions(log, url, api_key=API_KEY, max_retries=1, base_delay_s=0.001)
    assert state["requests"] == 2 and log.feedback_pending_count() == 1 and _cloud_feedback(store) == {}
    state["errors"] = [(429, {"Retry-After": "0"})]  # throttling on the rating is retried, not a refusal
    report = sync_decisions(log, url, api_key=API_KEY, base_delay_s=0.001)
    assert (report.accepted, report.feedback_accepted, report.retries, report.feedback_failed) == (1, 1, 1, [])


def test_a_rating_the_cloud_refuses_stays_pending_with_the_reason_and_is_reported(cloud, log, make_decision, tmp_path):
    url, store, _ = cloud
    kept, expired = make_decision(), make_decision()
    log.append_many([kept, expired])
    sync_decisions(log, url, api_key=API_KEY)
    # the cloud no longer has one decision (past its retention): it answers 404 to a rating of it
    store.client.delete_item(
        TableName=store.table_name,
        Key={"pk": {"S": device_pk(TENANT, DEVICE)}, "sk": {"S": f"DECISION#{expired.decision_id}"}},
    )
    _rate(log, kept.decision_id, 1, "thumbs")
    _rate(log, expired.decision_id, 3)
    report = sync_decisions(log, url, api_key=API_KEY)
    assert (report.feedback_sent, report.feedback_accepted, report.feedback_remaining) == (2, 1, 1)
    [(failed_id, error)] = report.feedback_failed
    assert failed_id == expired.decision_id and "(404)" in error and "No decision" in error
    assert f"1 refused by the cloud (kept pending; first: {expired.decision_id}: " in str(report)
    assert report.as_dict()["feedback_failed"] == [{"decision_id": expired.decision_id, "error": error}]
    pending = log.feedback(expired.decision_id)
    assert (pending.synced_at, pending.sync_error, pending.rating) == (None, error, 3)
    assert _cloud_feedback(store) == {kept.decision_id: (1, None)}
    # not dropped: the next sync offers it again, and reports it again
    again = subprocess.run(
        [sys.executable, "-m", "edge_client.sync", "--db", str(log.path), "--url", url, "--api-key", API_KEY, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert (summary["feedback_sent"], summary["feedback_accepted"], summary["feedback_remaining"]) == (1, 0, 1)
    assert summary["feedback_failed"][0]["decision_id"] == expired.decision_id


def _answered_twice(make_decision):
    """A request the device answered locally after it stopped waiting for the cloud, which served it anyway."""
    device = make_decision("weak", reason="fallback:strong_timeout")
    served = make_decision(
        "strong",
        decision_id=device.decision_id,
        created_at=device.created_at,
        tenant_id=TENANT,
        device_id=DEVICE,
        reason="routed",
        prompt_tokens=40,
        completion_tokens=200,
        cost_usd=0.0021,
        strong_cost_usd=0.0021,
    )
    return device, served


@pytest.mark.parametrize("answer_lost", [False, True])
def test_a_request_the_cloud_also_served_takes_the_clouds_charge(cloud, log, make_decision, answer_lost):
    url, store, state = cloud
    device, served = _answered_twice(make_decision)
    store.put_served(served)
    log.append_many([device, make_decision()])
    state["drop"] = int(answer_lost)  # the cloud merged the records, then the device never heard: a re-send
    report = sync_decisions(log, url, api_key=API_KEY, base_delay_s=0.01)
    assert report.charged == 1 and report.remaining == 0
    assert "1 took the cloud's numbers (1 answered here after the device stopped waiting" in str(report)
    kept = log.get(device.decision_id)
    assert kept.route == "weak" and kept.reason == "fallback:strong_timeout"  # what the device did stays
    assert kept.cost_usd == pytest.approx(device.cost_usd + served.cost_usd)  # and it pays for both answers
    assert store.usage(TENANT, DEVICE).totals.cost_usd == pytest.approx(log.usage().totals.cost_usd)
    assert log.spend_since(device.created_at[:10]) == pytest.approx(served.cost_usd)  # the caps see it
    again = sync_decisions(log, url, api_key=API_KEY)
    assert (again.sent, again.charged) == (0, 0)
