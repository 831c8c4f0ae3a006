"""The one HTTP face of an answer, shared by the device server and the cloud API.

Both servers answer a chat request with the same OpenAI response (plain, or the chunks of a stream) and the same
`routing` block: hybrid-router's own field, which OpenAI clients ignore and the OpenAPI schema of both servers
documents as `Routing`. The block says what was decided before the answer (route, reason, score, threshold,
router) and, once the answer's decision record exists, what it cost.
"""

from __future__ import annotations

from typing import Any

from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import CascadeInfo, ChatCompletionResponse, Choice, Routing, Usage
from hybrid_router.pipeline import Plan

HEADER_FIELDS = ("decision_id", "route", "reason", "model", "score", "threshold")


def routing_block(
    plan: Plan, route: str, reason: str, model: str, record: DecisionRecord | None = None
) -> dict[str, Any]:
    """The `routing` block of `plan` answered by `route`/`model`; with the answer's `record`, what it cost."""
    fields = plan.experiment_fields
    decided_route = plan.decided_route
    routing = Routing(
        decision_id=plan.decision_id,
        route=route,  # type: ignore[arg-type]
        reason=reason,
        model=model,
        decided_route=decided_route if decided_route != route else None,
        score=round(plan.score, 6),
        threshold=round(plan.threshold, 6),
        router_id=plan.router_id,
        router_version=plan.router_version,
        router_latency_ms=round(plan.router_latency_ms, 3),
        privacy_kinds=list(plan.privacy.kinds) if plan.privacy else [],
        conversation_id=fields.get("conversation_id"),
        quality_target=fields.get("quality_target"),
        quality_confidence=fields.get("quality_confidence"),
    )
    if record is not None:
        routing = routing.model_copy(update=_costs(record))
    return routing.model_dump(exclude_none=True)


def _costs(record: DecisionRecord) -> dict[str, Any]:
    costs: dict[str, Any] = {
        "route": record.route,
        "reason": record.reason,
        "model": record.model_used,
        "cost_usd": record.cost_usd,
        "strong_cost_usd": record.strong_cost_usd,
        "saving_usd": record.saving_usd,
        "generation_latency_ms": round(record.generation_latency_ms, 3),
    }
    if record.cached_from is not None:
        costs["cached_from"] = record.cached_from
    if record.confidence is not None:  # cascade mode drafted locally first
        costs["cascade"] = CascadeInfo(
            confidence=round(record.confidence, 6),
            escalated=record.escalated,
            draft_tokens=record.draft_tokens,
            draft_latency_ms=round(record.draft_latency_ms, 3),
        )
    return costs


def routing_headers(routing: dict[str, Any]) -> dict[str, str]:
    """The block's main fields as response headers, for clients that read no body field."""
    return {f"x-hybrid-router-{key.replace('_', '-')}": str(routing[key]) for key in HEADER_FIELDS}


def chat_response(
    record: DecisionRecord, text: str, finish_reason: str, routing: dict[str, Any]
) -> ChatCompletionResponse:
    """A plain chat answer: the text, the usage of its decision record, and the routing block."""
    return ChatCompletionResponse(
        id=f"chatcmpl-{record.decision_id}",
        model=record.model_used,
        choices=[Choice(message={"role": "assistant", "content": text}, finish_reason=finish_reason)],
        usage=Usage(
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            total_tokens=record.prompt_tokens + record.completion_tokens,
        ),
        routing=Routing.model_validate(routing),
    )


__all__ = ["chat_response", "routing_block", "routing_headers"]
