"""The device's answer cache: SQLite beside the decision log (its own file, WAL), one row per key.

Every fault is a miss: a file that cannot be opened or is not a database, a row that does not parse, a disk that
is full when storing. The cache can only save a strong request; it never fails one, and it never changes a record
but the reason and cost fields of a hit.

Bounds: entries older than `ttl_s` are never served (and are deleted when the next answer is stored); past
`max_entries` or `max_bytes` the oldest entries go first.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger("hybrid_router.cache")

FILE_NAME = "answer_cache.sqlite3"
DEFAULT_TTL_S = 7 * 24 * 3600.0
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key        TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    size       INTEGER NOT NULL,
    entry      TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS answers_age ON answers (created_at);
-- the bounds' running totals, kept by triggers: checking them costs the same at 100 entries as at 100,000
CREATE TABLE IF NOT EXISTS totals (
    id      INTEGER PRIMARY KEY CHECK (id = 0),
    entries INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);
INSERT OR IGNORE INTO totals (id, entries, bytes) VALUES (0, 0, 0);
CREATE TRIGGER IF NOT EXISTS answers_added AFTER INSERT ON answers BEGIN
    UPDATE totals SET entries = entries + 1, bytes = bytes + NEW.size WHERE id = 0;
END;
CREATE TRIGGER IF NOT EXISTS answers_removed AFTER DELETE ON answers BEGIN
    UPDATE totals SET entries = entries - 1, bytes = bytes - OLD.size WHERE id = 0;
END;
"""


class CachedAnswer(BaseModel):
    """A strong answer as it was delivered, and what it cost then (`decision_id`: the decision that paid)."""

    model_config = ConfigDict(extra="ignore")

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    decision_id: str
    cost_usd: float = Field(0.0, ge=0.0, allow_inf_nan=False)
    model: str = ""
    created_at: float = 0.0  # seconds since the epoch, when it was stored


class AnswerCache:
    """Get and put cached strong answers by key (hybrid_router.cache.key). Thread-safe; one connection."""

    def __init__(
        self,
        path: str | Path,
        ttl_s: float = DEFAULT_TTL_S,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=2.0, check_same_thread=False, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")  # a lost entry after a power cut is only a miss
                conn.executescript(_SCHEMA)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under `key` and younger than the TTL; None for a miss or anything unreadable."""
        with self._lock:
            try:
                row = self._connect().execute("SELECT created_at, entry FROM answers WHERE key = ?", (key,)).fetchone()
            except (sqlite3.Error, OSError) as exc:
                log.warning("answer cache %s unreadable (%s): a miss", self.path, exc)
                self._drop_connection()
                return None
        if row is None:
            return None
        created_at, entry = row
        try:
            if not isinstance(created_at, (int, float)) or self.clock() - created_at > self.ttl_s:
                return None
            answer = CachedAnswer.model_validate(json.loads(entry))
        except (TypeError, ValueError, ValidationError) as exc:
            log.warning("answer cache entry %s… corrupt (%s): a miss", key[:12], type(exc).__name__)
            self.discard(key)
            return None
        return answer

    def put(self, key: str, answer: CachedAnswer) -> bool:
        """Stores `answer` (replacing an older one under the key), then applies the TTL and the size bounds.
        False when it could not be stored (logged); never raises for a storage fault."""
        now = self.clock()
        entry = answer.model_copy(update={"created_at": now}).model_dump_json()
        size = len(entry.encode("utf-8", "surrogatepass")) + len(key)
        if size > self.max_bytes:
            return False
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute("DELETE FROM answers WHERE key = ?", (key,))  # not REPLACE: the triggers count it
                    conn.execute(
                        "INSERT INTO answers (key, created_at, size, entry) VALUES (?, ?, ?, ?)",
                        (key, now, size, entry),
                    )
                    self._evict(conn, now)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except (sqlite3.Error, OSError) as exc:
                log.warning("answer cache %s not written (%s)", self.path, exc)
                self._drop_connection()
                return False
        return True

    def _evict(self, conn: sqlite3.Connection, now: float) -> None:
        conn.execute("DELETE FROM answers WHERE created_at < ?", (now - self.ttl_s,))
        count, total = conn.execute("SELECT entries, bytes FROM totals WHERE id = 0").fetchone()
        if count > self.max_entries:
            conn.execute(
                "DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY created_at LIMIT ?)",
                (count - self.max_entries,),
            )
        if total > self.max_bytes:
            freed = 0
            doomed = []
            for key, size in conn.execute("SELECT key, size FROM answers ORDER BY created_at"):
                if total - freed <= self.max_bytes:
                    break
                doomed.append((key,))
                freed += size
            conn.executemany("DELETE FROM answers WHERE key = ?", doomed)

    def discard(self, key: str) -> None:
        with self._lock:
            try:
                self._connect().execute("DELETE FROM answers WHERE key = ?", (key,))
            except (sqlite3.Error, OSError):
                self._drop_connection()

    def __len__(self) -> int:
        with self._lock:
            try:
                return int(self._connect().execute("SELECT COUNT(*) FROM answers").fetchone()[0])
            except (sqlite3.Error, OSError):
                self._drop_connection()
                return 0

    def close(self) -> None:
        with self._lock:
            self._drop_connection()
