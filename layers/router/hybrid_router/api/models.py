"""Request and response bodies of the cloud API (chat completions use hybrid_router.openai_schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, model_validator

from hybrid_router.feedback import FeedbackRequest, FeedbackResponse  # noqa: F401  (the feedback bodies live there)
from hybrid_router.openai_schema import MAX_PROMPT_CHARS, ChatMessage, TextOnly


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    routes: list[str]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "hybrid-router"
    description: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class RouteRequest(TextOnly):
    """Decision only: the prompt (or chat messages, whose last user turn is scored) and optional routing knobs."""

    # The schema states the rules of _one_input (a null field counts as not sent).
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["prompt"], "properties": {"prompt": {"type": "string"}}},
                {"required": ["messages"], "properties": {"messages": {"type": "array"}}},
            ],
            "not": {
                "required": ["threshold", "strong_share"],
                "properties": {"threshold": {"type": "number"}, "strong_share": {"type": "number"}},
            },
        },
    )

    prompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    messages: list[ChatMessage] | None = Field(default=None, min_length=1)
    model: str = "router"
    # Strict, as in OpenAI's API: false is not 0, "0.3" is not a number (an int is a float).
    threshold: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    strong_share: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_input(self) -> RouteRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of 'prompt' or 'messages'")
        if self.threshold is not None and self.strong_share is not None:
            raise ValueError("send at most one of 'threshold' or 'strong_share'")
        return self

    def text(self) -> str:
        if self.prompt is not None:
            return self.prompt
        assert self.messages is not None
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return self.messages[-1].text()


class RouteResponse(BaseModel):
    """The decision. `decision_id` is for the caller's own decision record (this call stores none)."""

    decision_id: str
    score: float
    threshold: float
    route: Literal["weak", "strong"]
    model: str
    router_id: str
    router_kind: str
    router_version: str
    strong_model: str
    weak_model: str
    latency_ms: float


class DecisionBatch(BaseModel):
    """Records are checked one by one (a bad record fails alone), so they arrive as plain objects here."""

    model_config = ConfigDict(extra="forbid")

    records: list[Any]  # not list[dict]: a null or a string among the records fails alone too


class FailedRecord(BaseModel):
    """A record refused for what it holds (`invalid record: <field>: <why>`): re-sending it as is cannot help."""

    decision_id: str
    error: str


class ChargedRecord(BaseModel):
    """A record the cloud holds with other numbers than the device sent, because the cloud also served the request
    (the device stopped waiting and answered locally, or counted fewer tokens): what the request really cost."""

    decision_id: str
    cost_usd: float
    strong_cost_usd: float
    prompt_tokens: int
    completion_tokens: int


class DecisionBatchResult(BaseModel):
    accepted: int
    duplicates: int
    failed: list[FailedRecord]
    charged: list[ChargedRecord] = Field(
        default_factory=list,
        description="stored or already stored records "
        "whose cost the cloud's own answer changed; the device takes these numbers",
    )


class UsageResponse(BaseModel):
    """The caller's own usage (hybrid_router.usage.UsageSummary) over [since, until)."""

    tenant_id: str
    device_id: str
    since: str | None
    until: str | None
    totals: dict[str, Any]
    by_day: dict[str, dict[str, Any]]
    by_route: dict[str, dict[str, Any]]
