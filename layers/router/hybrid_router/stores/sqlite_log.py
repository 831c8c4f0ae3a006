"""The device's decision log: SQLite, one row per decision, durable before `append` returns.

Durability: WAL journal with `synchronous=FULL`, so every committed append is fsynced to the WAL
before `append` returns and survives a power cut, not only a crash of the process
(`NORMAL` in WAL mode can lose the last commits on power loss).
Several processes may use one log at once (the local server appends while `sync` marks rows):
WAL lets readers run beside the one writer, `busy_timeout` makes writers wait instead of failing,
and writes that read first take the write lock up front (`BEGIN IMMEDIATE`).

The same file keeps the user's ratings of answers (`feedback`, one per decision id) until the cloud has them.
Tables are created when missing each time a log is opened, so an older log file gains the feedback table then
(and the `sync_error` column).

A decision is pending until the cloud acknowledged it (`synced_at`) or refused it for what it holds
(`sync_error`, the cloud's reason): a refused record stays in the log, counts in local usage, and is not
offered to the cloud again.

A stream's record is written twice: open when the stream starts (`append_open`: an error record saying the
stream never ended, tagged with the writing process's pid), then replaced by the final one when it ends. The
decision id a streaming client holds therefore always exists, even if the process is killed mid-stream. Open
rows are not offered to the cloud while their process lives; a log opened after that process died closes them,
keeping the open record as what happened.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hybrid_router.decision import CHARGED_FIELDS, DecisionNotFound, DecisionRecord, utc_iso, utc_now_iso
from hybrid_router.feedback import FeedbackRequest, FeedbackResponse, Scale, rating_scale
from hybrid_router.usage import UsageSummary

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    day         TEXT NOT NULL,
    route       TEXT NOT NULL,
    cost_usd    REAL NOT NULL,
    record      TEXT NOT NULL,
    synced_at   TEXT,
    sync_batch  TEXT,
    sync_error  TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decisions_pending ON decisions (decision_id) WHERE synced_at IS NULL;
CREATE INDEX IF NOT EXISTS decisions_created ON decisions (created_at);
CREATE INDEX IF NOT EXISTS decisions_day ON decisions (day);
CREATE TABLE IF NOT EXISTS feedback (
    decision_id TEXT PRIMARY KEY,
    rating      INTEGER NOT NULL,
    scale       TEXT NOT NULL,
    comment     TEXT,
    created_at  TEXT NOT NULL,
    synced_at   TEXT,
    sync_error  TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS feedback_pending ON feedback (decision_id) WHERE synced_at IS NULL;
"""
_FEEDBACK_COLUMNS = ("decision_id", "rating", "scale", "comment", "created_at", "synced_at", "sync_error")

_SQLITE_MAX_VARIABLES = 500


@dataclass
class ChargeCounts:
    """Records that took the cloud's numbers after a sync, by cause."""

    answered_locally: int = 0  # the device stopped waiting and answered locally; the cloud served it too
    recounted: int = 0  # the cloud's answer: the cloud counted other tokens than the device recorded

    @property
    def total(self) -> int:
        return self.answered_locally + self.recounted


class DecisionLogError(RuntimeError):
    """The decision log could not be read or written; the message says why and what was not saved."""


def _explain(error: sqlite3.Error, path: Path, action: str) -> DecisionLogError:
    text = str(error).lower()
    if "full" in text:
        why = "the disk (or the log's size limit) is full"
    elif "readonly" in text or "read-only" in text:
        why = "the log file or its folder is read-only"
    elif "locked" in text or "busy" in text:
        why = "another process held the log locked for too long"
    elif "unable to open" in text:
        why = "the log file cannot be opened (missing folder or no permission)"
    else:
        why = str(error)
    return DecisionLogError(f"decision log {path}: cannot {action}: {why} ({error})")


class StoredFeedback(FeedbackResponse):
    """A rating as the device keeps it: its scale, and whether (or why not) the cloud has it."""

    scale: Scale
    synced_at: str | None = None
    sync_error: str | None = None  # the cloud's last refusal; the rating stays pending


class DecisionLog:
    """Decision records kept on the device until the cloud has acknowledged them."""

    def __init__(self, path: str | Path, busy_timeout_ms: int = 15_000, max_bytes: int | None = None) -> None:
        """`max_bytes` caps the log file's size; past it, appends fail with DecisionLogError like a full disk."""
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise DecisionLogError(f"decision log {self.path}: WAL journal not available (got {mode})")
            self._db.execute("PRAGMA synchronous = FULL")
            if max_bytes is not None:
                page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
                self._db.execute(f"PRAGMA max_page_count = {max(int(max_bytes) // page_size, 1)}")
            self._db.executescript(_SCHEMA)
            self._add_column("decisions", "sync_error TEXT")
            self._add_column("decisions", "open_pid INTEGER")
            self._add_column("decisions", "cloud_charge REAL")
            self._add_column("decisions", "experiment_id TEXT")
            self._add_column("decisions", "conversation_id TEXT")
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS decisions_conversation ON decisions (conversation_id, decision_id)"
                " WHERE conversation_id IS NOT NULL"
            )
            self._close_abandoned()
        except sqlite3.Error as error:
            raise _explain(error, self.path, "open") from error
        except OSError as error:
            blocker = next((p for p in [self.path.parent, *self.path.parent.parents] if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise DecisionLogError(
                    f"decision log {self.path}: {blocker} is a file, not a folder; "
                    "set the data folder (data_dir) to a folder"
                ) from error
            raise DecisionLogError(f"decision log {self.path}: cannot open: {error}") from error

    def _close_abandoned(self) -> None:
        """Open rows of processes that are gone are final: what they hold (an unfinished stream) happened."""
        pids = [
            row[0] for row in self._db.execute("SELECT DISTINCT open_pid FROM decisions WHERE open_pid IS NOT NULL")
        ]
        dead = [(pid,) for pid in pids if not _process_alive(pid)]
        if dead:
            self._db.executemany("UPDATE decisions SET open_pid = NULL WHERE open_pid = ?", dead)

    def _add_column(self, table: str, column: str) -> None:
        """A column a log from an earlier version lacks (another process opening it may add it first)."""
        name = column.split()[0]
        if any(row[1] == name for row in self._db.execute(f"PRAGMA table_info({table})")):
            return
        try:
            self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        except sqlite3.OperationalError as error:
            if "duplicate column" not in str(error).lower():
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock from the start; a SQLite failure becomes a
        DecisionLogError saying what could not be done (`action`), and nothing of it is kept."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as error:
                raise _explain(error, self.path, action) from error

    # writes

    def append(self, record: DecisionRecord) -> bool:
        """Store one record; True if it was new, False if that decision id was already logged."""
        return self.append_many([record]) == 1

    def append_open(self, record: DecisionRecord) -> bool:
        """Store the record of a stream that has started, to be replaced by `append` when it ends."""
        return self._insert([record], open_pid=os.getpid()) == 1

    def append_many(self, records: Iterable[DecisionRecord]) -> int:
        """Store records in one transaction (replacing open ones of the same id); returns how many were new or
        completed. A record already stored and not open stays as it is (re-sending is idempotent)."""
        return self._insert(list(records), open_pid=None)

    def _insert(self, records: list[DecisionRecord], open_pid: int | None) -> int:
        rows = [
            (
                r.decision_id,
                utc_iso(r.created_at),
                r.day,
                r.route,
                r.cost_usd,
                r.model_dump_json(),
                open_pid,
                r.experiment_id,
                r.conversation_id,
            )
            for r in records
        ]
        if not rows:
            return 0
        ids = ", ".join(row[0] for row in rows[:3]) + (" ..." if len(rows) > 3 else "")
        with self._transaction(f"save {len(rows)} decision(s) [{ids}]") as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO decisions (decision_id, created_at, day, route, cost_usd, record, open_pid, experiment_id,"
                " conversation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (decision_id) DO UPDATE SET"
                " created_at = excluded.created_at, day = excluded.day, route = excluded.route,"
                " cost_usd = excluded.cost_usd, record = excluded.record, open_pid = excluded.open_pid,"
                " experiment_id = excluded.experiment_id, conversation_id = excluded.conversation_id"
                " WHERE decisions.open_pid IS NOT NULL AND excluded.open_pid IS NULL",
                rows,
            )
            added = db.total_changes - before
        return added

    def mark_synced(self, decision_ids: Sequence[str], batch: str | None = None) -> int:
        """Mark decisions the cloud has acknowledged; returns how many rows changed from pending to synced."""
        ids = list(decision_ids)
        if not ids:
            return 0
        now = utc_iso(datetime.now(UTC))
        changed = 0
        with self._transaction(f"mark {len(ids)} decision(s) synced") as db:
            for start in range(0, len(ids), _SQLITE_MAX_VARIABLES):
                chunk = ids[start : start + _SQLITE_MAX_VARIABLES]
                marks = ",".join("?" * len(chunk))
                cursor = db.execute(
                    f"UPDATE decisions SET synced_at = ?, sync_batch = ?"
                    f" WHERE synced_at IS NULL AND decision_id IN ({marks})",
                    [now, batch, *chunk],
                )
                changed += cursor.rowcount
        return changed

    def apply_charges(self, charges: Sequence[Mapping[str, Any]]) -> ChargeCounts:
        """What the cloud says requests really cost (POST /v1/decisions' `charged`: it served them and counted
        otherwise, e.g. it also served a request the device stopped waiting for and answered locally, or the
        device's token counts were estimates): the records take those numbers, and what the cloud's answer added
        counts as strong spend for the caps whatever the route. Returns how many records changed, by cause."""
        changed = ChargeCounts()
        with self._transaction(f"apply {len(charges)} cloud charge(s)") as db:
            for charge in charges:
                row = db.execute(
                    "SELECT record FROM decisions WHERE decision_id = ?", (str(charge["decision_id"]),)
                ).fetchone()
                if row is None:
                    continue
                record = DecisionRecord.model_validate_json(row[0])
                updated = DecisionRecord.model_validate(
                    {**record.model_dump(), **{name: charge[name] for name in CHARGED_FIELDS}}
                )
                if updated == record:
                    continue
                added = 0.0 if record.route == "strong" else max(updated.cost_usd - record.cost_usd, 0.0)
                db.execute(
                    "UPDATE decisions SET record = ?, cost_usd = ?, cloud_charge = coalesce(cloud_charge, 0) + ?"
                    " WHERE decision_id = ?",
                    (updated.model_dump_json(), updated.cost_usd, added, record.decision_id),
                )
                if record.route == "weak":
                    changed.answered_locally += 1
                else:
                    changed.recounted += 1
        return changed

    def mark_refused(self, refusals: Mapping[str, str]) -> int:
        """Decisions the cloud refused for what they hold ({decision_id: its reason}): no longer pending, kept
        with the reason. Returns how many changed."""
        if not refusals:
            return 0
        with self._transaction(f"mark {len(refusals)} decision(s) refused") as db:
            before = db.total_changes
            db.executemany(
                "UPDATE decisions SET sync_error = ? WHERE synced_at IS NULL AND decision_id = ?",
                [(reason[:1000], decision_id) for decision_id, reason in refusals.items()],
            )
            return db.total_changes - before

    def rate(self, feedback: FeedbackRequest) -> StoredFeedback:
        """Keep the user's rating of a logged decision, replacing an earlier one (which makes it pending again).
        Raises DecisionNotFound if the decision is not in this log."""
        stored = StoredFeedback(
            decision_id=feedback.decision_id,
            rating=feedback.rating,
            comment=feedback.comment,
            scale=rating_scale(feedback.rating, feedback.scale),
            created_at=utc_now_iso(),
        )
        with self._transaction(f"save the rating of decision {feedback.decision_id}") as db:
            if db.execute("SELECT 1 FROM decisions WHERE decision_id = ?", (feedback.decision_id,)).fetchone() is None:
                raise DecisionNotFound(f"no decision {feedback.decision_id} in the decision log {self.path}")
            db.execute(
                "INSERT OR REPLACE INTO feedback (decision_id, rating, scale, comment, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (stored.decision_id, stored.rating, stored.scale, stored.comment, stored.created_at),
            )
        return stored

    def mark_feedback(self, sent: StoredFeedback, error: str | None = None) -> bool:
        """The cloud's answer to a rating sent to it: synced, or (with `error`) still pending with the reason.
        Changes nothing if the user re-rated meanwhile (the new rating stays pending); True if it changed."""
        update = "synced_at = ?, sync_error = NULL" if error is None else "sync_error = ?"
        with self._transaction(f"mark the rating of decision {sent.decision_id}") as db:
            cursor = db.execute(
                f"UPDATE feedback SET {update} WHERE decision_id = ? AND synced_at IS NULL"
                " AND created_at = ? AND rating = ? AND scale = ? AND comment IS ?",
                (
                    utc_now_iso() if error is None else error,
                    sent.decision_id,
                    sent.created_at,
                    sent.rating,
                    sent.scale,
                    sent.comment,
                ),
            )
        return cursor.rowcount == 1

    # reads

    def _query(self, sql: str, params: Sequence[object], action: str) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise _explain(error, self.path, action) from error

    def _pending_rows(self, limit: int, after: str | None) -> list[tuple]:
        return self._query(
            "SELECT decision_id, record FROM decisions WHERE synced_at IS NULL AND sync_error IS NULL"
            " AND open_pid IS NULL AND decision_id > ? ORDER BY decision_id LIMIT ?",
            (after or "", int(limit)),
            "read pending decisions",
        )

    def pending(self, limit: int = 100, after: str | None = None) -> list[DecisionRecord]:
        """The oldest decisions not yet acknowledged (nor refused) by the cloud (ULIDs sort by time); `after`
        pages on."""
        return [DecisionRecord.model_validate_json(row[1]) for row in self._pending_rows(limit, after)]

    def pending_json(self, limit: int = 100, after: str | None = None) -> list[tuple[str, object]]:
        """pending() as (decision_id, the record as logged), unchecked: what sync sends, so that a row this
        version would not accept (logged by an older one) is the cloud's to refuse, not a stop for the rest."""
        rows = []
        for decision_id, text in self._pending_rows(limit, after):
            try:
                rows.append((decision_id, json.loads(text)))
            except ValueError:
                rows.append((decision_id, text))
        return rows

    def pending_count(self) -> int:
        return self._query(
            "SELECT count(*) FROM decisions WHERE synced_at IS NULL AND sync_error IS NULL AND open_pid IS NULL",
            (),
            "count pending",
        )[0][0]

    def refused(self, limit: int = 100) -> list[tuple[str, str]]:
        """(decision_id, the cloud's reason) of decisions the cloud refused, oldest first."""
        return self._query(
            "SELECT decision_id, sync_error FROM decisions WHERE sync_error IS NOT NULL"
            " AND synced_at IS NULL ORDER BY decision_id LIMIT ?",
            (int(limit),),
            "read refused",
        )

    def refused_count(self) -> int:
        return self._query(
            "SELECT count(*) FROM decisions WHERE sync_error IS NOT NULL AND synced_at IS NULL", (), "count refused"
        )[0][0]

    def count(self) -> int:
        return self._query("SELECT count(*) FROM decisions", (), "count decisions")[0][0]

    def get(self, decision_id: str) -> DecisionRecord | None:
        rows = self._query("SELECT record FROM decisions WHERE decision_id = ?", (decision_id,), "read a decision")
        return DecisionRecord.model_validate_json(rows[0][0]) if rows else None

    def is_synced(self, decision_id: str) -> bool:
        rows = self._query(
            "SELECT synced_at IS NOT NULL FROM decisions WHERE decision_id = ?", (decision_id,), "read a decision"
        )
        return bool(rows and rows[0][0])

    def feedback(self, decision_id: str) -> StoredFeedback | None:
        rows = self._query(
            f"SELECT {', '.join(_FEEDBACK_COLUMNS)} FROM feedback WHERE decision_id = ?",
            (decision_id,),
            "read a rating",
        )
        return StoredFeedback(**dict(zip(_FEEDBACK_COLUMNS, rows[0], strict=False))) if rows else None

    def pending_feedback(self, limit: int = 100, after: str | None = None) -> list[StoredFeedback]:
        """Ratings the cloud does not have yet, of decisions it has (it refuses ratings of unknown decisions)."""
        columns = ", ".join(f"f.{name}" for name in _FEEDBACK_COLUMNS)
        rows = self._query(
            f"SELECT {columns} FROM feedback f JOIN decisions d ON d.decision_id = f.decision_id"
            " WHERE f.synced_at IS NULL AND d.synced_at IS NOT NULL AND f.decision_id > ?"
            " ORDER BY f.decision_id LIMIT ?",
            (after or "", int(limit)),
            "read pending ratings",
        )
        return [StoredFeedback(**dict(zip(_FEEDBACK_COLUMNS, row, strict=False))) for row in rows]

    def feedback_pending_count(self) -> int:
        return self._query("SELECT count(*) FROM feedback WHERE synced_at IS NULL", (), "count pending ratings")[0][0]

    def rated(self) -> list[tuple[StoredFeedback, DecisionRecord]]:
        """Every rating with its decision, by decision id."""
        columns = ", ".join(f"f.{name}" for name in _FEEDBACK_COLUMNS)
        rows = self._query(
            f"SELECT {columns}, d.record FROM feedback f JOIN decisions d ON d.decision_id = f.decision_id"
            " ORDER BY f.decision_id",
            (),
            "read ratings",
        )
        return [
            (
                StoredFeedback(**dict(zip(_FEEDBACK_COLUMNS, row, strict=False))),
                DecisionRecord.model_validate_json(row[-1]),
            )
            for row in rows
        ]

    def records(
        self, since: str | date | datetime | None = None, until: str | date | datetime | None = None
    ) -> list[DecisionRecord]:
        """Decisions created at or after `since` and before `until`, oldest first."""
        where, params = self._window(since, until)
        rows = self._query(
            f"SELECT record FROM decisions {where} ORDER BY created_at, decision_id", params, "read decisions"
        )
        return [DecisionRecord.model_validate_json(row[0]) for row in rows]

    def experiment_records(self, experiment_id: str) -> list[DecisionRecord]:
        """The decisions of one router experiment, oldest first."""
        rows = self._query(
            "SELECT record FROM decisions WHERE experiment_id = ? ORDER BY decision_id",
            (experiment_id,),
            "read an experiment's decisions",
        )
        return [DecisionRecord.model_validate_json(row[0]) for row in rows]

    def last_route(self, conversation_id: str) -> str | None:
        """The route of the conversation's latest answered turn on this device (an answer that was served, not an
        error), or None when this device has answered none of its turns."""
        rows = self._query(
            "SELECT route FROM decisions WHERE conversation_id = ? AND json_extract(record, '$.status') = 'ok'"
            " ORDER BY decision_id DESC LIMIT 1",
            (conversation_id,),
            "read a conversation's routes",
        )
        return rows[0][0] if rows else None

    def ratings(self) -> dict[str, StoredFeedback]:
        """Every rating, by decision id."""
        rows = self._query(f"SELECT {', '.join(_FEEDBACK_COLUMNS)} FROM feedback", (), "read ratings")
        return {row[0]: StoredFeedback(**dict(zip(_FEEDBACK_COLUMNS, row, strict=False))) for row in rows}

    def usage(
        self, since: str | date | datetime | None = None, until: str | date | datetime | None = None
    ) -> UsageSummary:
        return UsageSummary.from_records(self.records(since, until))

    def spend_since(self, since: str | date | datetime) -> float:
        """What strong answers cost since `since` (e.g. the start of today or of the month): the budget cap's input.
        A local answer the cloud also served (and charged, as a sync reports) counts with the cloud's charge."""
        rows = self._query(
            "SELECT coalesce(sum(CASE WHEN route = 'strong' THEN cost_usd ELSE coalesce(cloud_charge, 0) END), 0.0)"
            " FROM decisions WHERE created_at >= ?",
            (utc_iso(since),),
            "sum spend",
        )
        return float(rows[0][0])

    @staticmethod
    def _window(since: str | date | datetime | None, until: str | date | datetime | None) -> tuple[str, list[str]]:
        clauses, params = [], []
        if since is not None:
            clauses.append("created_at >= ?")
            params.append(utc_iso(since))
        if until is not None:
            clauses.append("created_at < ?")
            params.append(utc_iso(until))
        return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
