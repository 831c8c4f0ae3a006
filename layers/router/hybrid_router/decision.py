"""The decision record: one per request, the same fields on the device, in the API and in DynamoDB."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, field_validator, model_serializer

from hybrid_router.ulid import is_ulid, new_ulid

Route = Literal["weak", "strong"]
Status = Literal["ok", "error"]

MAX_TOKENS = 10**9
MAX_USD = 10**6
MAX_LATENCY_MS = 10**8
# DynamoDB numbers reach down to 1e-130 (boto3's TypeSerializer refuses smaller ones); far smaller than any
# count or price a record holds, so a smaller positive value is stored as 0.
SMALLEST_STORED = 1e-100

# Why a request went where it went (the record's `reason`), one vocabulary for every module.
ROUTED = "routed"  # the router chose
FORCED = "forced"  # the request named a model
FALLBACK_PREFIX = "fallback:"  # fallback:<cause>: the other side answered because <cause>
BUDGET_PREFIX = "budget:"  # budget:<cap>: a spend cap kept a strong plan local
PRIVACY_PREFIX = "privacy:"  # reason privacy:<kind>: private data kept the prompt on the device (or refused it)
KEPT = "cascade:kept"
ESCALATED = "cascade:escalated"
CASCADE_REASONS = (KEPT, ESCALATED)
# A strong answer served from the answer cache (hybrid_router.cache): the same request, or a near-duplicate.
CACHE_REASONS = ("cache:exact", "cache:similar")

Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS)]
Usd = Annotated[float, Field(ge=0.0, le=MAX_USD, allow_inf_nan=False)]
Millis = Annotated[float, Field(ge=0.0, le=MAX_LATENCY_MS, allow_inf_nan=False)]
Share = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
KindName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


def fallback(cause: str) -> str:
    """The reason of an answer the planned side could not give: `fallback:<cause>`."""
    return f"{FALLBACK_PREFIX}{cause}"


def is_fallback(reason: str) -> bool:
    return reason.startswith(FALLBACK_PREFIX)


def as_route(value: object) -> Route:
    """`value` as a Route; ValueError for anything but "weak" and "strong" (e.g. from another server's answer)."""
    if value == "weak":
        return "weak"
    if value == "strong":
        return "strong"
    raise ValueError(f"a route is 'weak' or 'strong', got {str(value)[:40]!r}")


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
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DecisionNotFound(LookupError):
    """No decision with that id exists for this device (in its log, or in the cloud under its identity)."""


def utc_now_iso() -> str:
    return utc_iso(datetime.now(UTC))


EXPERIMENT_FIELDS = (
    "experiment_id",
    "arm",
    "shadow_router_id",
    "shadow_router_version",
    "shadow_score",
    "shadow_threshold",
    "shadow_route",
    "shadow_router_latency_ms",
)
# The quality target in force when the router chose (hybrid_router.routing.operating_point); absent when the
# threshold came from elsewhere (a threshold or strong share the user set, a router-<kind>-<t> name, no target).
QUALITY_FIELDS = ("quality_target", "quality_confidence")
# The conversation a request belongs to (hybrid_router.routing.conversation): the client's id or a hash of the
# conversation's opening, never its text.
CONVERSATION_FIELDS = ("conversation_id",)
# The decision whose strong answer a cache hit served again (absent unless the answer came from the cache).
CACHE_FIELDS = ("cached_from",)
OPTIONAL_FIELDS = EXPERIMENT_FIELDS + QUALITY_FIELDS + CONVERSATION_FIELDS + CACHE_FIELDS

AFFINITY_REASONS = ("affinity:strong",)


class DecisionRecord(BaseModel):
    """What was decided for one prompt, what it cost, and what the strong model would have cost.

    `reason` is `routed` (the router chose), `forced` (the caller named a model),
    `budget:<cap>` (the daily or monthly spend cap sent it local; older records say `budget`) or
    `fallback:<cause>` (the chosen side failed), `affinity:strong` (the router chose the local model, but the
    conversation's earlier turns were answered by the strong model and this message depends on them or is not
    clearly easy), or in cascade mode `cascade:kept` (the local draft was the answer)
    and `cascade:escalated` (the draft was discarded, the strong model answered), or `privacy:<kind>` (the prompt
    carried private data, so the local model answered or, with the `refuse` setting, nobody did).
    `privacy_kinds` names the kinds of private data found (hybrid_router.privacy.PrivacyKind), never the values;
    empty for a prompt without any (and for records older than the field).
    `cache:exact` / `cache:similar`: a strong answer served again from the answer cache (`cached_from` names the
    decision that paid for it, `cost_usd` is 0 and `strong_cost_usd` what it cost then, so the record keeps the saving).
    A cascade record carries the draft as well (`draft_tokens`, `draft_latency_ms`, `confidence`, `escalated`):
    a discarded draft costs time and energy (in `energy_wh`, and its electricity in `cost_usd` as any local answer),
    no strong-model dollars. Records without a draft keep the defaults (0, 0, None, False), so older records read
    as they were.
    The prompt text is kept only when the user turns that on (`prompt`).
    Numbers are finite and within what any real request reaches (tokens up to 10**9, dollars and watt-hours up
    to 10**6, latencies up to 10**8 ms), so every store can hold them.
    """

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field(default_factory=new_ulid)
    created_at: str = Field(default_factory=utc_now_iso)
    tenant_id: str = "local"
    device_id: str = "local"
    router_id: str
    router_version: str
    score: Share
    threshold: Share
    route: Route
    reason: str = ROUTED
    weak_model: str
    strong_model: str
    model_used: str
    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    router_latency_ms: Millis = 0.0
    generation_latency_ms: Millis = 0.0
    queue_latency_ms: Millis = 0.0  # waiting for a busy local model; not generation
    cost_usd: Usd = 0.0
    strong_cost_usd: Usd = 0.0
    energy_wh: Usd = 0.0
    status: Status = "ok"
    error: str | None = None
    prompt: str | None = None
    draft_tokens: Tokens = 0  # cascade: tokens of the local draft, kept or discarded
    draft_latency_ms: Millis = 0.0  # cascade: time the local draft took
    confidence: Share | None = None  # cascade: the draft's confidence (None: no draft was made)
    escalated: bool = False  # cascade: the draft was not kept and the strong model was asked
    privacy_kinds: list[KindName] = Field(default_factory=list, max_length=32)  # kinds of private data found
    # Router experiments (hybrid_router.experiments); absent outside one. `shadow_*`: the other arm's router's
    # decision for the same prompt (the candidate's in shadow mode), which nothing answered.
    experiment_id: str | None = Field(default=None, max_length=128)
    arm: Literal["control", "candidate"] | None = None
    shadow_router_id: str | None = Field(default=None, max_length=256)
    shadow_router_version: str | None = Field(default=None, max_length=128)
    shadow_score: Share | None = None
    shadow_threshold: Share | None = None
    shadow_route: Route | None = None
    shadow_router_latency_ms: Millis | None = None
    # The quality target in force (`quality_target`: the local model right on at least this share of the prompts it
    # keeps, with `quality_confidence`); absent when no target set the threshold.
    quality_target: Share | None = None
    quality_confidence: Share | None = None
    # The conversation's key (the client's own id, or `d-<hash>` of its opening); absent when none was known.
    conversation_id: str | None = Field(default=None, min_length=1, max_length=128)
    # A cache hit: the decision whose strong answer this is (hybrid_router.cache); absent otherwise.
    cached_from: str | None = Field(default=None, max_length=26)
    # The token counts are the backend's estimate: the model reported none (e.g. an answer cut off mid-stream).
    usage_estimated: bool = False

    @model_serializer(mode="wrap")
    def _without_unset_optional(self, handler: SerializerFunctionWrapHandler) -> dict:
        """Experiment, quality-target, conversation and cache fields, `usage_estimated` and `privacy_kinds` are left
        out while unset, so a record without them is what it was before they existed, and a cloud of that older
        version (which refuses unknown fields) still takes it."""
        data = handler(self)
        for name in OPTIONAL_FIELDS:
            if data.get(name, 0) is None:
                del data[name]
        if data.get("usage_estimated") is False:
            del data["usage_estimated"]
        if data.get("privacy_kinds") == []:
            del data["privacy_kinds"]
        return data

    @field_validator("shadow_score", "shadow_threshold", "shadow_router_latency_ms")
    @classmethod
    def _storable_optional(cls, value: float | None) -> float | None:
        return None if value is None else 0.0 if value < SMALLEST_STORED else value

    @field_validator("decision_id")
    @classmethod
    def _must_be_ulid(cls, value: str) -> str:
        if not is_ulid(value):
            raise ValueError("decision_id must be a 26-character ULID")
        return value

    @field_validator(
        "score",
        "threshold",
        "router_latency_ms",
        "generation_latency_ms",
        "queue_latency_ms",
        "cost_usd",
        "strong_cost_usd",
        "energy_wh",
        "draft_latency_ms",
        "confidence",
    )
    @classmethod
    def _storable(cls, value: float | None) -> float | None:
        return 0.0 if value is not None and value < SMALLEST_STORED else value

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
        if value in (
            ROUTED,
            FORCED,
            "budget",
            *CASCADE_REASONS,
            *AFFINITY_REASONS,
            *CACHE_REASONS,
        ) or value.startswith((FALLBACK_PREFIX, BUDGET_PREFIX, PRIVACY_PREFIX)):
            return value
        raise ValueError(
            "reason must be routed, forced, budget:<cap>, fallback:<cause>, affinity:strong, cascade:kept, "
            "cascade:escalated, cache:exact, cache:similar or privacy:<kind>"
        )

    @property
    def day(self) -> str:
        return self.created_at[:10]

    @property
    def saving_usd(self) -> float:
        return self.strong_cost_usd - self.cost_usd


# What a sync tells the device about a request the cloud served too: the device's record takes these numbers.
CHARGED_FIELDS = ("cost_usd", "strong_cost_usd", "prompt_tokens", "completion_tokens")
# What only the device knows about a request the cloud served: kept from the device's record in every merge.
DEVICE_FIELDS = (
    "weak_model",
    "router_id",
    "router_version",
    "score",
    "threshold",
    "reason",
    "router_latency_ms",
    "generation_latency_ms",
    "queue_latency_ms",
    "prompt",
    "draft_tokens",
    "draft_latency_ms",
    "confidence",
    "escalated",
    *OPTIONAL_FIELDS,
)
# A device that stopped waiting and answered locally also keeps what describes its own answer.
LOCAL_ANSWER_FIELDS = ("route", "model_used", "prompt_tokens", "completion_tokens")


def charged_differently(sent: DecisionRecord, stored: DecisionRecord) -> bool:
    return any(getattr(sent, name) != getattr(stored, name) for name in CHARGED_FIELDS)


def answered_locally_after_all(device: DecisionRecord) -> bool:
    """The device's record of a request the cloud served says the device gave up waiting and answered itself."""
    return device.route == "weak" and is_fallback(device.reason)


def merge_served(served: DecisionRecord, device: DecisionRecord, device_first: bool = False) -> DecisionRecord:
    """One record for a request the cloud served and the device logged under the same decision id.

    The cloud's record is the cloud's: time, route, models, tokens, cost, status and error come from it, so no
    upload can make a served answer cheaper, older or weaker. The device adds only what it alone knows (its
    router's decision and latency, its reason, a cascade draft, experiment fields, the prompt if it keeps them).
    One exception, for a record uploaded after the cloud served: a device that stopped waiting and answered
    locally (route weak, reason `fallback:<cause>`) keeps its route, model and tokens, and pays for both answers.
    A device record stored before the cloud served (`device_first`) cannot claim that: the cloud's route stands.
    """
    update = {name: getattr(device, name) for name in DEVICE_FIELDS}
    if answered_locally_after_all(device) and not device_first:
        update.update({name: getattr(device, name) for name in LOCAL_ANSWER_FIELDS})
        update["cost_usd"] = served.cost_usd + device.cost_usd
        update["energy_wh"] = served.energy_wh + device.energy_wh
    elif device.route != served.route:
        update["reason"] = served.reason
    return served.model_copy(update=update)
