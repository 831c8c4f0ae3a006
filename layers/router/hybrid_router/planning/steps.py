"""The planner's optional steps, each a small object a server turns on: private data (the device), the
conversation's earlier routes (where a decision log remembers them), and the spend caps (the device)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hybrid_router.decision import FORCED, ROUTED
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import Plan
from hybrid_router.routing.conversation import (
    client_conversation_id,
    conversation_key,
    features,
    follow_conversation,
)

if TYPE_CHECKING:  # the cloud detects nothing: it does not pay for compiling the patterns
    from hybrid_router.budget import BudgetExceeded
    from hybrid_router.privacy import Detector, PrivacyCheck, PrivacyMode


@dataclass(frozen=True)
class PrivacyGate:
    """Personal data and secrets in the conversation: a private conversation stays on the device (`local`, or
    `redact` when nothing could be redacted) or is refused, whatever the router or a forced model name chose;
    `redact` keeps the route."""

    mode: PrivacyMode
    detector: Detector

    def check(self, request: ChatCompletionRequest) -> PrivacyCheck:
        from hybrid_router.privacy import PrivacyCheck

        texts = [message.text() for message in request.messages]
        last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=len(texts) - 1)
        return PrivacyCheck.of(texts, last_user, self.mode, self.detector)

    @staticmethod
    def apply(plan: Plan, check: PrivacyCheck | None) -> None:
        plan.privacy = check
        if check is not None and (check.keeps_local or check.refuses):
            plan.route, plan.reason, plan.cascade = "weak", check.reason, None


@dataclass(frozen=True)
class Conversations:
    """Every plan records its conversation's key (the client's `x-conversation-id` or metadata, else derived from
    the opening; never text). With `last_route` (the decision log's memory) and `affinity` on, a message the router
    sent to the local model stays strong while the conversation's last turn was answered strong, unless it is
    independent of the earlier turns and clearly easy (hybrid_router.routing.conversation)."""

    last_route: Callable[[str], str | None] | None = None  # the route of the conversation's last turn
    affinity: bool = False
    margin: float = 0.0

    def follow(self, request: ChatCompletionRequest, plan: Plan, given_key: str | None) -> None:
        extra = request.model_extra or {}
        client_id = client_conversation_id(given_key, extra.get("metadata"))
        key = conversation_key(request.messages, client_id, user=extra.get("user"))
        plan.experiment_fields["conversation_id"] = key
        if self.last_route is None or not self.affinity:
            return
        if plan.reason != ROUTED or plan.cascade is not None or plan.route != "weak":
            return
        previous = self.last_route(key)
        conversation = features(
            request.messages, key, previous, request.last_user_text(), key_given=client_id is not None
        )
        plan.route, plan.reason = follow_conversation(plan.route, plan.score, plan.threshold, conversation, self.margin)


@dataclass(frozen=True)
class SpendCaps:
    """A strong plan over a spend cap: answered locally (reason `budget:<cap>`), or, when the request named the
    strong model, refused with 429 (SpendCapReached) unless `forced_fallback`."""

    over_cap: Callable[[ChatCompletionRequest], BudgetExceeded | None]
    forced_fallback: bool = False

    def apply(self, request: ChatCompletionRequest, plan: Plan) -> None:
        from hybrid_router.planning.errors import SpendCapReached

        if plan.route != "strong":
            return
        over = self.over_cap(request)
        if over is not None and plan.reason == FORCED and not self.forced_fallback:
            raise SpendCapReached(over)
        if over is not None:
            plan.route, plan.reason = "weak", over.reason
