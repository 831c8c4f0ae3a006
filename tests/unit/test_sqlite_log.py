import os
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from hybrid_router.decision import DecisionNotFound
from hybrid_router.feedback import FeedbackRequest, unit_score
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError
from hybrid_router.usage import UsageSummary


@pytest.fixture
def log(tmp_path):
    with DecisionLog(tmp_path / "decisions.db") as log:
        yield log


def test_wal_and_full_sync_are_on(log):
    raw = sqlite3.connect(log.path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()
    assert log._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_append_is_idempotent_and_round_trips(log, make_decision):
    record = make_decision("strong", prompt="hello")
    assert log.append(record) is True
    assert log.append(record) is False
    assert log.count() == 1
    assert log.get(record.decision_id) == record


def test_append_is_durable_for_another_connection(log, make_decision):
    record = make_decision()
    log.append(record)
    other = DecisionLog(log.path)
    assert other.get(record.decision_id) == record
    other.close()


def test_pending_oldest_first_and_mark_synced(log, make_decision):
    records = [make_decision(at=f"2025-01-01T00:00:{s:02d}Z") for s in range(10)]
    for r in reversed(records):
        log.append(r)
    assert [r.decision_id for r in log.pending(4)] == [r.decision_id for r in records[:4]]
    assert log.mark_synced([r.decision_id for r in records[:4]], batch="b1") == 4
    assert log.mark_synced([records[0].decision_id]) == 0  # already synced
    assert log.pending_count() == 6
    assert log.is_synced(records[0].decision_id) and not log.is_synced(records[4].decision_id)
    page = log.pending(3)
    assert [r.decision_id for r in page] == [r.decision_id for r in records[4:7]]
    assert [r.decision_id for r in log.pending(10, after=page[-1].decision_id)] == [r.decision_id for r in records[7:]]


def test_mark_synced_many_ids(log, make_decision):
    records = [make_decision() for _ in range(1200)]
    assert log.append_many(records) == 1200
    assert log.append_many(records) == 0
    assert log.mark_synced([r.decision_id for r in records]) == 1200
    assert log.pending(5) == []


def test_records_window_usage_and_spend(log, make_decision):
    records = [
        make_decision("strong", at="2025-02-27T23:59:59Z", cost_usd=0.5, strong_cost_usd=0.5),
        make_decision("strong", at="2025-03-01T00:00:00Z", cost_usd=0.25, strong_cost_usd=0.25),
        make_decision("weak", at="2025-03-01T12:00:00Z", cost_usd=0.001, strong_cost_usd=0.3),
        make_decision("strong", at="2025-03-02T08:00:00+02:00", cost_usd=0.125, strong_cost_usd=0.125),
    ]
    log.append_many(records)
    assert log.records() == sorted(records, key=lambda r: r.created_at)
    march = log.records(since="2025-03-01")
    assert [r.decision_id for r in march] == [r.decision_id for r in records[1:]]
    assert [r.decision_id for r in log.records(since="2025-03-01", until="2025-03-02")] == [
        records[1].decision_id,
        records[2].decision_id,
    ]
    # 08:00+02:00 is 06:00Z, compared in UTC
    assert [r.decision_id for r in log.records(since=datetime(2025, 3, 2, 6, 30, tzinfo=UTC))] == []
    assert log.usage(since="2025-03-01") == UsageSummary.from_records(records[1:])
    assert log.spend_since("2025-03-01") == pytest.approx(0.375)  # strong only
    assert log.spend_since(datetime(2025, 2, 1)) == pytest.approx(0.875)


_WRITER = textwrap.dedent(
    """
    import sys
    from hybrid_router.decision import DecisionRecord
    from hybrid_router.stores.sqlite_log import DecisionLog
    path, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    log = DecisionLog(path)
    if mode == "write":
        for i in range(n):
            log.append(DecisionRecord(router_id="r", router_version="1", score=0.5, threshold=0.5, route="weak",
                                      weak_model="w", strong_model="s", model_used="w"))
    else:
        marked = 0
        while marked < n:
            batch = log.pending(50)
            marked += log.mark_synced([r.decision_id for r in batch])
    print("ok")
    """
)


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "shared.db"
    DecisionLog(path).close()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), "150", "write"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    syncer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path), "300", "sync"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for proc in [*writers, syncer]:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "ok"
    log = DecisionLog(path)
    assert log.count() == 450
    assert log.count() - log.pending_count() >= 300  # every mark the syncer counted stuck
    log.close()


def test_size_limit_raises_clear_error_and_keeps_what_was_saved(tmp_path, make_decision):
    log = DecisionLog(tmp_path / "small.db", max_bytes=64 * 1024)
    saved = []
    with pytest.raises(DecisionLogError, match="full") as caught:
        for _ in range(10_000):
            record = make_decision(prompt="x" * 500)
            log.append(record)
            saved.append(record)
    assert record.decision_id in str(caught.value)  # the message names what was not saved
    assert 0 < len(saved) < 10_000
    log.close()
    reopened = DecisionLog(tmp_path / "small.db")
    assert reopened.count() == len(saved)
    assert reopened.get(saved[-1].decision_id) == saved[-1]
    assert reopened.get(record.decision_id) is None
    reopened.close()


def _mount_tmpfs(target, size="256k"):
    if os.geteuid() != 0:
        pytest.skip("mounting a tiny filesystem needs root")
    target.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.strip()}")


def test_real_full_disk_and_read_only_disk(tmp_path, make_decision):
    mount = tmp_path / "tiny"
    _mount_tmpfs(mount)
    try:
        log = DecisionLog(mount / "decisions.db")
        saved = 0
        with pytest.raises(DecisionLogError, match="full"):
            for _ in range(10_000):
                log.append(make_decision(prompt="y" * 800))
                saved += 1
        assert saved > 0
        log.close()
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        with pytest.raises(DecisionLogError, match="read-only|cannot open"):
            DecisionLog(mount / "decisions.db").append(make_decision())
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_data_folder_that_is_a_file_is_named_in_the_error(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    for path in (tmp_path / "data" / "decisions.db", tmp_path / "data" / "sub" / "decisions.db"):
        with pytest.raises(DecisionLogError, match=f"{tmp_path / 'data'} is a file, not a folder"):
            DecisionLog(path)


# ------------------------------------------------------------------------------------------------ feedback


def test_a_rating_is_kept_replaced_and_pending_until_the_cloud_has_it(log, make_decision):
    record = make_decision()
    log.append(record)
    first = log.rate(FeedbackRequest(decision_id=record.decision_id, rating=1, scale="thumbs"))
    assert (first.rating, first.scale, first.synced_at) == (1, "thumbs", None)
    assert log.pending_feedback() == []  # the cloud has not got the decision yet: it would refuse the rating
    assert log.feedback_pending_count() == 1
    log.mark_synced([record.decision_id])
    [pending] = log.pending_feedback()
    assert pending == first
    assert log.mark_feedback(pending) is True
    assert log.feedback(record.decision_id).synced_at is not None and log.feedback_pending_count() == 0
    second = log.rate(FeedbackRequest(decision_id=record.decision_id, rating=4, comment="good enough"))
    assert second.scale == "stars"
    assert log.pending_feedback() == [second]  # re-rating replaces the rating and makes it pending again
    [(stored, decision)] = log.rated()
    assert (stored.rating, stored.comment, decision) == (4, "good enough", record)


def test_a_rating_sent_before_a_re_rating_does_not_mark_the_new_one(log, make_decision):
    record = make_decision()
    log.append(record)
    log.mark_synced([record.decision_id])
    sent = log.rate(FeedbackRequest(decision_id=record.decision_id, rating=-1))
    log.rate(FeedbackRequest(decision_id=record.decision_id, rating=5))
    assert log.mark_feedback(sent) is False
    assert log.mark_feedback(sent, error="refused") is False
    [pending] = log.pending_feedback()
    assert (pending.rating, pending.sync_error) == (5, None)
    assert log.mark_feedback(pending, error="HTTP 404: no such decision") is True
    [pending] = log.pending_feedback()  # a refused rating stays pending, with the cloud's reason
    assert pending.sync_error == "HTTP 404: no such decision" and pending.synced_at is None


def test_rating_an_unknown_decision_or_off_the_scale_is_an_error(log, make_decision):
    record = make_decision()
    log.append(record)
    with pytest.raises(DecisionNotFound, match="no decision"):
        log.rate(FeedbackRequest(decision_id=make_decision().decision_id, rating=5))
    with pytest.raises(ValidationError, match="rating must be 1..5"):
        FeedbackRequest(decision_id=record.decision_id, rating=7)
    with pytest.raises(ValidationError, match="ambiguous"):
        FeedbackRequest(decision_id=record.decision_id, rating=1)
    with pytest.raises(ValidationError, match="not on the thumbs scale"):
        FeedbackRequest(decision_id=record.decision_id, rating=3, scale="thumbs")
    assert log.rated() == [] and log.feedback_pending_count() == 0


def test_ratings_map_to_unit_scores():
    assert [unit_score(r, "stars") for r in (1, 2, 3, 4, 5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [unit_score(r, "thumbs") for r in (-1, 1)] == [0.0, 1.0]


def test_a_log_file_from_before_feedback_opens_and_gains_the_table(tmp_path, make_decision):
    """A log written by the previous version (no feedback table) opens as is and takes ratings."""
    path = tmp_path / "old.sqlite3"
    record = make_decision(prompt="What is 2 + 2?")
    old = sqlite3.connect(path)
    old.executescript("""
        PRAGMA journal_mode = WAL;
        CREATE TABLE decisions (decision_id TEXT PRIMARY KEY, created_at TEXT NOT NULL, day TEXT NOT NULL,
            route TEXT NOT NULL, cost_usd REAL NOT NULL, record TEXT NOT NULL, synced_at TEXT, sync_batch TEXT
        ) WITHOUT ROWID;
        CREATE INDEX decisions_pending ON decisions (decision_id) WHERE synced_at IS NULL;
    """)
    old.execute(
        "INSERT INTO decisions (decision_id, created_at, day, route, cost_usd, record) VALUES (?, ?, ?, ?, ?, ?)",
        (record.decision_id, record.created_at, record.day, record.route, record.cost_usd, record.model_dump_json()),
    )
    old.commit()
    old.close()
    with DecisionLog(path) as log:
        assert log.records() == [record] and log.pending_count() == 1
        log.rate(FeedbackRequest(decision_id=record.decision_id, rating=2))
        [(stored, decision)] = log.rated()
    assert (stored.rating, stored.scale, decision.prompt) == (2, "stars", "What is 2 + 2?")


def test_a_full_log_refuses_a_rating_with_the_logs_clear_error(tmp_path, make_decision):
    log = DecisionLog(tmp_path / "small.db", max_bytes=64 * 1024)
    record = make_decision()
    log.append(record)
    for size in (500, 0):  # full to the last page, whatever room the big records left
        with pytest.raises(DecisionLogError, match="full"):
            for _ in range(10_000):
                log.append(make_decision(prompt="x" * size))
    with pytest.raises(DecisionLogError, match=f"cannot save the rating of decision {record.decision_id}: .* full"):
        log.rate(FeedbackRequest(decision_id=record.decision_id, rating=3, comment="y" * 4000))
    assert log.rated() == []
    log.close()


def test_a_refused_decision_leaves_the_queue_keeps_its_reason_and_still_counts_locally(log, make_decision):
    records = sorted((make_decision() for _ in range(3)), key=lambda r: r.decision_id)
    log.append_many(records)
    assert log.mark_refused({records[1].decision_id: "invalid record: cost_usd: too large"}) == 1
    assert [r.decision_id for r in log.pending()] == [records[0].decision_id, records[2].decision_id]
    assert [d for d, _ in log.pending_json()] == [records[0].decision_id, records[2].decision_id]
    assert log.pending_count() == 2 and log.refused_count() == 1
    assert log.refused() == [(records[1].decision_id, "invalid record: cost_usd: too large")]
    assert log.usage().totals.requests == 3
    log.mark_synced([records[1].decision_id])  # the cloud took it after all: synced, no longer refused
    assert log.refused_count() == 0 and log.is_synced(records[1].decision_id)


def test_pending_json_hands_over_a_row_this_version_would_refuse(log, make_decision):
    from hybrid_router.decision import DecisionRecord

    odd = DecisionRecord.model_construct(**{**make_decision().model_dump(), "cost_usd": 1e200})
    log.append(odd)
    [(decision_id, record)] = log.pending_json()
    assert decision_id == odd.decision_id and record["cost_usd"] == 1e200
    with pytest.raises(ValidationError):
        log.pending()


def test_an_open_stream_record_is_kept_not_synced_then_replaced(tmp_path, make_decision) -> None:
    log = DecisionLog(tmp_path / "log.db")
    opened = make_decision(status="error", error="unfinished", completion_tokens=0)
    assert log.append_open(opened)
    assert log.get(opened.decision_id).error == "unfinished"
    assert log.pending_count() == 0 and log.pending() == []  # its process (this one) still streams
    final = opened.model_copy(update={"status": "ok", "error": None, "completion_tokens": 42})
    assert log.append(final)
    assert log.get(opened.decision_id).completion_tokens == 42 and log.pending_count() == 1
    assert not log.append(final.model_copy(update={"completion_tokens": 1}))  # a closed record stays as it is
    assert log.get(opened.decision_id).completion_tokens == 42


def test_an_open_record_of_a_dead_process_is_final_when_the_log_is_reopened(tmp_path, make_decision) -> None:
    path = tmp_path / "log.db"
    opened = make_decision(status="error", error="unfinished")
    child = """
import sys
from hybrid_router.decision import DecisionRecord
from hybrid_router.stores.sqlite_log import DecisionLog
DecisionLog(sys.argv[1]).append_open(DecisionRecord.model_validate_json(sys.argv[2]))
"""
    subprocess.run([sys.executable, "-c", child, str(path), opened.model_dump_json()], check=True)
    log = DecisionLog(path)
    assert log.pending_count() == 1 and log.pending()[0].decision_id == opened.decision_id


def test_a_conversations_last_answered_route(tmp_path, make_decision):
    """The device's own log tells the route of a conversation's latest answered turn (errors do not count)."""
    with DecisionLog(tmp_path / "log.db") as log:
        assert log.last_route("c1") is None
        log.append(make_decision(conversation_id="c1", route="strong", at="2026-12-01T10:00:00Z"))
        log.append(make_decision(conversation_id="c2", route="weak", at="2026-12-01T10:00:01Z"))
        assert log.last_route("c1") == "strong"
        log.append(make_decision(conversation_id="c1", route="weak", at="2026-12-01T10:00:02Z"))
        log.append(make_decision(conversation_id="c1", route="strong", status="error", at="2026-12-01T10:00:03Z"))
        assert log.last_route("c1") == "weak"
        assert log.last_route("c2") == "weak"
