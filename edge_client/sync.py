"""Upload the device's pending decision records, then its pending ratings, to the cloud: batched, retried, idempotent.

A record is marked synced only after the cloud acknowledged it (accepted, or already stored = duplicate).
A record the cloud refuses for what it holds (its per-record `failed` answer, or a 413 for that record alone) is
marked refused in the log with the reason, reported, and not sent again; the rest go on. A sync that refused
records this time is `stuck` (exit status 1 from the command line), as is one that gave up on a batch.
The cloud dedups by decision id, so a batch re-sent after a crash, a kill or a dropped connection comes back
as duplicates: killing `sync` at any moment loses nothing and stores nothing twice.
Ratings go one per request to POST /v1/feedback once the cloud has their decision; the cloud keeps one rating per
decision, so a re-sent rating replaces itself. A rating the cloud refuses (a 4xx other than throttling) stays
pending with the cloud's reason recorded in the log, is reported, and is offered again by the next sync.

    python -m edge_client.sync [--db PATH] [--url URL] [--api-key KEY] [--batch-size N] [--json]
(missing options come from the device settings: HYBRID_ROUTER_* env and the settings file)
"""

from __future__ import annotations

import argparse
import json
import random
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import httpx

from hybrid_router.feedback import FeedbackRequest
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError
from hybrid_router.ulid import new_ulid

DECISIONS_PATH = "/v1/decisions"
FEEDBACK_PATH = "/v1/feedback"
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
_JSON = {"content-type": "application/json"}


class SyncError(ConnectionError):
    """Sync stopped before every pending record was acknowledged; what was acknowledged stays marked."""

    def __init__(self, message: str, report: SyncReport | None = None):
        super().__init__(message)
        self.report = report


class SyncAuthError(SyncError):
    """The cloud refused the API key (401/403): retrying cannot help."""


class SyncRejected(SyncError):
    """The cloud refused what was sent (a 4xx other than auth, size or throttling): re-sending it as is cannot help."""


@dataclass
class SyncReport:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    batches: int = 0
    retries: int = 0
    remaining: int = 0
    seconds: float = 0.0
    feedback_sent: int = 0
    feedback_accepted: int = 0
    feedback_failed: list[tuple[str, str]] = field(default_factory=list)
    feedback_remaining: int = 0
    refused_total: int = 0  # refused records in the log, from this sync and earlier ones
    charged: int = 0  # records that took the cloud's numbers: it served them and counted otherwise
    answered_locally: int = 0  # of those: the device stopped waiting and answered locally, the cloud served too

    @property
    def stuck(self) -> bool:
        """Records this sync could not get into the cloud (refused: they stay on the device only)."""
        return bool(self.failed)

    def __str__(self) -> str:
        rejected = ""
        if self.failed:
            decision_id, reason = self.failed[0]
            rejected = (
                f"; {len(self.failed)} refused by the cloud (kept in the device log as refused, not sent "
                f"again; first: {decision_id}: {reason})"
            )
        if self.refused_total > len(self.failed):
            rejected += f"; {self.refused_total} refused in all"
        refused = (
            f", {len(self.feedback_failed)} refused by the cloud (kept pending; first: "
            f"{self.feedback_failed[0][0]}: {self.feedback_failed[0][1]})"
            if self.feedback_failed
            else ""
        )
        charged = ""
        if self.charged:
            recounted = self.charged - self.answered_locally
            causes = [
                f"{self.answered_locally} answered here after the device stopped waiting, served by the cloud too"
                if self.answered_locally
                else "",
                f"{recounted} with the cloud's token count" if recounted else "",
            ]
            charged = f", {self.charged} took the cloud's numbers ({'; '.join(c for c in causes if c)})"
        return (
            f"synced {self.accepted + self.duplicates} of {self.sent} decisions sent "
            f"({self.accepted} new, {self.duplicates} already in the cloud{charged}) in {self.batches} batches, "
            f"{self.retries} retries, {self.seconds:.1f}s{rejected}; {self.remaining} left pending; "
            f"ratings: {self.feedback_accepted} of {self.feedback_sent} sent accepted{refused}, "
            f"{self.feedback_remaining} left pending"
        )

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stuck"] = self.stuck
        for key in ("failed", "feedback_failed"):
            data[key] = [{"decision_id": d, "error": e} for d, e in getattr(self, key)]
        return data


def sync_decisions(
    log: DecisionLog | Any,
    client: httpx.Client | str | None = None,
    *,
    api_key: str | None = None,
    batch_size: int = 100,
    max_retries: int = 5,
    base_delay_s: float = 0.5,
    max_delay_s: float = 30.0,
    timeout_s: float = 30.0,
    max_batches: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncReport:
    """Send pending records oldest first, `batch_size` a request, to POST /v1/decisions; then pending ratings
    (of decisions the cloud has) to POST /v1/feedback, one a request.

    `log` is a DecisionLog, or the device Settings (then the log, URL, key and batch size come from them).
    `client` is an httpx.Client whose base_url is the cloud API, or that base URL.
    Retries connection errors, timeouts, 408/429/5xx with exponential backoff and full jitter
    (`max_retries` per batch, Retry-After honoured); raises SyncAuthError on 401/403 and SyncError
    when a batch still fails after its retries or the cloud answers something unusable.
    """
    if not isinstance(log, DecisionLog) and hasattr(log, "decision_log_path"):
        return _sync_with_settings(log, client, max_retries=max_retries, sleep=sleep)
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    http, own_client = _http_client(client, timeout_s)
    report = SyncReport()
    post = partial(
        _post,
        http,
        headers={"x-api-key": api_key} if api_key else {},
        max_retries=max_retries,
        base_delay_s=base_delay_s,
        max_delay_s=max_delay_s,
        sleep=sleep,
        report=report,
    )
    started = time.monotonic()
    try:
        _sync_records(log, post, batch_size, max_batches, report)
        _sync_feedback(log, post, batch_size, report)
    except SyncError as error:
        error.report = _finish(report, log, started)
        raise
    finally:
        if own_client:
            http.close()
    return _finish(report, log, started)


def _http_client(client: httpx.Client | str | None, timeout_s: float) -> tuple[httpx.Client, bool]:
    """The client to send with, and whether it is ours to close (made here for a base URL)."""
    if isinstance(client, httpx.Client):
        return client, False
    if not client:
        raise SyncError("no cloud URL to sync to (set cloud_url / HYBRID_ROUTER_CLOUD_URL)")
    return httpx.Client(base_url=str(client), timeout=timeout_s), True


def _sync_records(
    log: DecisionLog, post: Callable[..., Any], batch_size: int, max_batches: int | None, report: SyncReport
) -> None:
    """Pending records oldest first, a batch a request. A batch too large for the cloud (413) is halved and sent
    again; a single record too large is refused."""
    cursor: str | None = None
    size = batch_size
    while max_batches is None or report.batches < max_batches:
        batch = log.pending_json(size, after=cursor)
        if not batch:
            break
        ids = [decision_id for decision_id, _ in batch]
        answer = post(DECISIONS_PATH, {"records": [record for _, record in batch]})
        if answer is None:  # 413: the batch was too big for the cloud; halve it and try again
            if size > 1:
                size = max(1, len(batch) // 2)
                continue
            answer = {
                "accepted": 0,
                "duplicates": 0,
                "failed": [{"decision_id": ids[0], "error": "too large for the cloud (HTTP 413)"}],
            }
            size = batch_size
        _settle_batch(log, ids, answer, report)
        cursor = ids[-1]


def _settle_batch(log: DecisionLog, ids: list[str], answer: Any, report: SyncReport) -> None:
    """Marks the batch's records as the cloud answered (synced, refused, charged) and counts them in `report`."""
    failed = _acknowledged(answer, ids)
    acked = [decision_id for decision_id in ids if decision_id not in failed]
    log.mark_synced(acked, batch=new_ulid())
    log.mark_refused(failed)
    counts = log.apply_charges(_charges(answer, acked))
    report.charged += counts.total
    report.answered_locally += counts.answered_locally
    report.sent += len(ids)
    report.batches += 1
    report.accepted += int(answer["accepted"])
    report.duplicates += int(answer["duplicates"])
    report.failed.extend(failed.items())


def _sync_feedback(log: DecisionLog, post: Callable[..., Any], page_size: int, report: SyncReport) -> None:
    """Pending ratings whose decision the cloud has, one request each; marked synced once the cloud echoed them."""
    cursor: str | None = None
    while page := log.pending_feedback(page_size, after=cursor):
        for feedback in page:
            body = FeedbackRequest(
                decision_id=feedback.decision_id, rating=feedback.rating, scale=feedback.scale, comment=feedback.comment
            )
            report.feedback_sent += 1
            try:
                answer = post(FEEDBACK_PATH, body.model_dump(mode="json"))
                if answer is None:
                    raise SyncRejected("the cloud refused the rating as too large (413)")
            except SyncRejected as error:
                log.mark_feedback(feedback, error=str(error))
                report.feedback_failed.append((feedback.decision_id, str(error)))
                continue
            if not isinstance(answer, dict) or answer.get("decision_id") != feedback.decision_id:
                raise SyncError(f"unusable answer from the cloud to a rating: {str(answer)[:200]}")
            log.mark_feedback(feedback)
            report.feedback_accepted += 1
        cursor = page[-1].decision_id


def _finish(report: SyncReport, log: DecisionLog, started: float) -> SyncReport:
    report.seconds = time.monotonic() - started
    report.remaining = log.pending_count()
    report.refused_total = log.refused_count()
    report.feedback_remaining = log.feedback_pending_count()
    return report


def _post(
    http: httpx.Client,
    path: str,
    body: dict[str, Any],
    headers: dict[str, str],
    max_retries: int,
    base_delay_s: float,
    max_delay_s: float,
    sleep: Callable[[float], None],
    report: SyncReport,
) -> dict[str, Any] | None:
    """The cloud's answer to one request; None if the body was too large (413)."""
    for attempt in range(max_retries + 1):
        retry_after: float | None = None
        try:
            response = http.post(path, content=_json_bytes(body), headers={**headers, **_JSON})
        except httpx.TransportError as error:
            tls = _tls_failure(error)
            if tls is not None:
                raise SyncError(
                    f"TLS handshake with {http.base_url} failed ({tls}): check that cloud_url's scheme "
                    "(http or https) and certificate are right; retrying cannot help"
                ) from error
            problem = f"{type(error).__name__}: {error}"
        else:
            status = response.status_code
            if status in (401, 403):
                raise SyncAuthError(f"the cloud refused the API key ({status}): {_message(response)}")
            if status == 413:
                return None
            if 200 <= status < 300:
                try:
                    return response.json()
                except ValueError:
                    problem = f"unreadable answer ({status}): {response.text[:200]!r}"
            elif status in _RETRY_STATUS:
                problem = f"HTTP {status}: {_message(response)}"
                retry_after = _retry_after(response)
            elif 400 <= status < 500:
                raise SyncRejected(f"the cloud rejected {path} ({status}): {_message(response)}")
            else:
                raise SyncError(f"the cloud failed {path} ({status}): {_message(response)}")
        if attempt == max_retries:
            raise SyncError(f"gave up after {max_retries + 1} attempts: {problem}")
        report.retries += 1
        ceiling = min(max_delay_s, base_delay_s * 2**attempt)
        delay = random.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, max_delay_s))
        sleep(delay)
    raise AssertionError("unreachable")


def _json_bytes(body: dict[str, Any]) -> bytes:
    """The body as httpx would send it, except that a number JSON cannot spell (a NaN or infinity in a record
    an older version logged) goes as Python's `NaN`/`Infinity`, for the cloud to refuse that record alone,
    instead of failing the whole batch here."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _acknowledged(answer: Any, ids: Sequence[str]) -> dict[str, str]:
    """The records the cloud did not store ({id: error}); raises SyncError if the answer does not add up."""
    try:
        accepted, duplicates = int(answer["accepted"]), int(answer["duplicates"])
        failed: dict[str, str] = {}
        for item in answer.get("failed") or []:
            if isinstance(item, dict):
                failed[str(item["decision_id"])] = str(item.get("error", ""))
            else:
                failed[str(item[0])] = str(item[1])
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise SyncError(f"unusable answer from the cloud ({error}): {str(answer)[:200]}") from None
    unknown = set(failed) - set(ids)
    if unknown or accepted < 0 or duplicates < 0 or accepted + duplicates + len(failed) != len(ids):
        # Marking on an answer that does not add up could lose records: mark none, the re-send is harmless.
        raise SyncError(
            f"the cloud's answer does not match the batch of {len(ids)}: accepted {accepted}, "
            f"duplicates {duplicates}, failed {len(failed)}"
            + (f" (unknown ids {sorted(unknown)[:3]})" if unknown else "")
        )
    return failed


def _charges(answer: Any, acked: Sequence[str]) -> list[dict[str, Any]]:
    """The cloud's `charged` entries for records of this batch it acknowledged (an older cloud sends none)."""
    wanted = set(acked)
    charges = answer.get("charged") or []
    if not isinstance(charges, list):
        raise SyncError(f"unusable 'charged' in the cloud's answer: {str(charges)[:200]}")
    return [c for c in charges if isinstance(c, dict) and c.get("decision_id") in wanted]


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"])
            if data.get("detail"):
                return str(data["detail"])
    except ValueError:
        pass
    return response.text[:200] or response.reason_phrase


def _tls_failure(error: BaseException) -> str | None:
    """The TLS error behind a transport error (a wrong scheme or a bad certificate), if that is what it is."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _sync_with_settings(settings: Any, client: httpx.Client | str | None, **options: Any) -> SyncReport:
    with DecisionLog(settings.decision_log_path) as log:
        return sync_decisions(
            log,
            client or settings.cloud_url,
            api_key=settings.api_key,
            batch_size=settings.sync_batch_size,
            **options,
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_client.sync", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="decision log (default: from the device settings)")
    parser.add_argument("--url", help="cloud API base URL (default: cloud_url setting)")
    parser.add_argument("--api-key", help="cloud API key (default: api_key setting)")
    parser.add_argument("--batch-size", type=int, help="records per request (default: sync_batch_size setting)")
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)

    settings = None
    if not (args.db and args.url and args.api_key and args.batch_size):
        from edge_client.config import ConfigError, load_settings

        try:
            settings = load_settings().settings
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    db = args.db or (settings.decision_log_path if settings else None)
    url = args.url or (settings.cloud_url if settings else None)
    api_key = args.api_key or (settings.api_key if settings else None)
    batch_size = args.batch_size or (settings.sync_batch_size if settings else 100)
    assert db is not None  # settings are loaded whenever --db is not given
    try:
        with DecisionLog(db) as log:
            report = sync_decisions(
                log, url, api_key=api_key, batch_size=batch_size, max_retries=args.max_retries, timeout_s=args.timeout
            )
    except SyncAuthError as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
    except (SyncError, DecisionLogError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        partial = getattr(error, "report", None)
        if partial is not None:
            print(str(partial), file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict()) if args.json else str(report))
    if report.stuck:
        print(
            f"error: the cloud refused {len(report.failed)} record(s); they stay in the device log as refused "
            f"(first: {report.failed[0][0]}: {report.failed[0][1]})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
