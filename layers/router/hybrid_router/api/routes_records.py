"""Record routes: POST /v1/decisions (device uploads), GET /v1/usage, POST /v1/feedback."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Depends, Query

from hybrid_router.api.deps import caller, services
from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity
from hybrid_router.api.models import (
    ChargedRecord,
    DecisionBatch,
    DecisionBatchResult,
    FailedRecord,
    FeedbackRequest,
    FeedbackResponse,
    UsageResponse,
)
from hybrid_router.api.openapi import errors
from hybrid_router.api.services import Services
from hybrid_router.decision import CHARGED_FIELDS

router = APIRouter()


@router.post("/v1/decisions", response_model=DecisionBatchResult, responses=errors(422, 502, 503))
def upload_decisions(
    body: DecisionBatch, who: Identity = Depends(caller), svc: Services = Depends(services)
) -> DecisionBatchResult:
    """Idempotent by decision id. Every record is stored under the caller's tenant/device (from the gateway),
    whatever the body says. A device's record of a request the cloud served (same decision id) is merged into
    the cloud's record once, and counts as accepted. `failed` lists only records refused for what they hold
    (re-sending them cannot help); the rest are stored. If DynamoDB kept failing some records after retries,
    the whole call is 503 (throttling) or 502, and the batch can be re-sent as is (stored records come back as
    duplicates)."""
    if len(body.records) > svc.settings.max_batch_records:
        raise ApiError(
            413,
            f"Too many records: at most {svc.settings.max_batch_records} per request.",
            code="batch_too_large",
            param="records",
        )
    result = svc.call_store(
        "put_records",
        svc.store.put_records,
        body.records,
        owner=(who.tenant_id, who.device_id),
        max_age=timedelta(days=svc.settings.upload_window_days),
    )
    refused = [f for f in result.failed if f[1].refused]
    unstored = [f for f in result.failed if not f[1].refused]
    svc.telemetry.batch(result.accepted, result.duplicates, len(result.failed))
    for record in result.stored:  # Device* metrics: newly stored records only, never a re-sent duplicate
        svc.telemetry.decision(record, source="device")
    if unstored:
        throttled = all(f[1].retryable for f in unstored)
        what = "is throttling or failing for now" if throttled else f"failed ({unstored[0][1][:200]})"
        raise ApiError(
            503 if throttled else 502,
            f"The decision store {what}: {len(unstored)} of {len(body.records)} records were not "
            f"stored ({result.accepted} stored). Re-send the batch in a few seconds; stored records "
            f"will count as duplicates.",
            code="store_throttled" if throttled else "store_error",
            headers={"Retry-After": "2"},
        )
    return DecisionBatchResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        failed=[FailedRecord(decision_id=d, error=e) for d, e in refused],
        charged=[ChargedRecord(**r.model_dump(include={"decision_id", *CHARGED_FIELDS})) for r in result.charged],
    )


def _bound(value: str | None, name: str) -> str | None:
    """The bound in the form records' created_at has (YYYY-MM-DD, or a UTC time ending in Z), so that the store's
    comparisons and `since < until` hold for any ISO 8601 spelling (offsets, week dates, basic format)."""
    if value is None or value == "":
        return None
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    except (ValueError, OverflowError):
        raise ApiError(
            422,
            f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 time, got {value!r}.",
            code="invalid_value",
            param=name,
        ) from None


@router.get("/v1/usage", response_model=UsageResponse, responses=errors(422, 502, 503))
def usage(
    since: str | None = Query(default=None, max_length=40),
    until: str | None = Query(default=None, max_length=40),
    who: Identity = Depends(caller),
    svc: Services = Depends(services),
) -> UsageResponse:
    """The caller's own decisions only (its tenant/device partition); `until` is exclusive."""
    since, until = _bound(since, "since"), _bound(until, "until")
    if since and until and since >= until:
        raise ApiError(422, "since must be before until.", code="invalid_value", param="since")
    summary = svc.call_store("usage", svc.store.for_device(who.tenant_id, who.device_id).usage, since, until)
    dumped = summary.model_dump()
    return UsageResponse(tenant_id=who.tenant_id, device_id=who.device_id, since=since, until=until, **dumped)


@router.post("/v1/feedback", response_model=FeedbackResponse, responses=errors(404, 422, 502, 503))
def feedback(
    body: FeedbackRequest, who: Identity = Depends(caller), svc: Services = Depends(services)
) -> FeedbackResponse:
    """A rating of one of the caller's own decisions (404 if the caller has no decision with that id)."""
    from hybrid_router.stores.dynamodb import DecisionNotFound

    try:
        stored = svc.call_store(
            "put_feedback",
            svc.store.put_feedback,
            who.tenant_id,
            who.device_id,
            body.decision_id,
            body.rating,
            body.comment,
            body.scale,
        )
    except DecisionNotFound:
        raise ApiError(
            404, f"No decision {body.decision_id} for this device.", code="decision_not_found", param="decision_id"
        ) from None
    except ValueError as exc:
        raise ApiError(422, str(exc), code="invalid_value") from None
    return FeedbackResponse(
        decision_id=body.decision_id,
        rating=int(stored["rating"]),
        scale=stored.get("scale"),
        comment=stored.get("comment"),
        created_at=stored["created_at"],
    )
