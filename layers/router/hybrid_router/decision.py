"""The decision record: one per request, the same fields on the device, in the API and in DynamoDB."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybrid_router.ulid import is_ulid, new_ulid

Route = Literal["weak", "strong"]
Status = Literal["ok", "error"]


def utc_iso(value: str | date | datetime) -> str:
    """Any ISO 8601 date or time, spelled as records spell times: UTC, milliseconds, `Z`.

    A plain date is its midnight UTC; a time without an offset is taken as UTC. One spelling lets every store
    compare times as strings. ValueError for text that is not ISO 8601.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    elif not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DecisionNotFound(LookupError):
    """No decision with that id exists for this device (in its log, or in the cloud under its identity)."""


def utc_now_iso() -> str:
    return utc_iso(datetime.now(timezone.utc))


class DecisionRecord(BaseModel):
    """What was decided for one prompt, what it cost, and what the strong model would have cost.

    `reason` is `routed` (the router chose), `forced` (the caller named a model),
    `budget` (the spend cap sent it local) or `fallback:<cause>` (the chosen side failed).
    The prompt text is kept only when the user turns that on (`prompt`).
    """

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(default_factory=new_ulid)
    created_at: str = Field(default_factory=utc_now_iso)
    tenant_id: str = "local"
    device_id: str = "local"
    router_id: str
    router_version: str
    score: float = Field(ge=0.0, le=1.0)
    threshold: float = Field(ge=0.0, le=1.0)
    route: Route
    reason: str = "routed"
    weak_model: str
    strong_model: str
    model_used: str
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    router_latency_ms: float = Field(default=0.0, ge=0.0)
    generation_latency_ms: float = Field(default=0.0, ge=0.0)
    cost_usd: float = Field(default=0.0, ge=0.0)
    strong_cost_usd: float = Field(default=0.0, ge=0.0)
    energy_wh: float = Field(default=0.0, ge=0.0)
    status: Status = "ok"
    error: str | None = None
    prompt: str | None = None

    @field_validator("decision_id")
    @classmethod
    def _must_be_ulid(cls, value: str) -> str:
        if not is_ulid(value):
            raise ValueError("decision_id must be a 26-character ULID")
        return value

    @field_validator("created_at")
    @classmethod
    def _utc_time(cls, value: str) -> str:
        """One spelling everywhere (UTC, milliseconds, `Z`), so stores can compare times as strings."""
        try:
            return utc_iso(value)
        except (TypeError, ValueError):
            raise ValueError("created_at must be an ISO 8601 date-time, e.g. 2026-11-28T10:00:00Z") from None

    @field_validator("reason")
    @classmethod
    def _known_reason(cls, value: str) -> str:
        if value in ("routed", "forced", "budget") or value.startswith("fallback:"):
            return value
        raise ValueError("reason must be routed, forced, budget or fallback:<cause>")

    @property
    def day(self) -> str:
        return self.created_at[:10]

    @property
    def saving_usd(self) -> float:
        return self.strong_cost_usd - self.cost_usd
