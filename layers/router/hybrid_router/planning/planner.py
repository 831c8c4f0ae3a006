"""One planner for the device and the cloud: a chat request and its caller become a `Plan`.

Model names (ModelCatalog), the router's score (a RouteSource: the device's router file, the cloud's deployed
version, or the cloud's POST /v1/route), experiments and the quality target (Routers.decide), cascade mode, the
conversation, private data and the spend caps are each decided here once. Device and cloud differ only in the
settings and sources they give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hybrid_router.cascade import CascadePolicy
from hybrid_router.decision import FORCED, ROUTED, Route, fallback
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import Plan
from hybrid_router.planning.catalog import CASCADE, REMOTE, ModelCatalog
from hybrid_router.planning.errors import RoutingError, UnknownModelError, UnknownRouterKind
from hybrid_router.planning.source import RouteQuery, RouteSource, Scored
from hybrid_router.planning.steps import Conversations, PrivacyGate, SpendCaps
from hybrid_router.routing import RouterSpec
from hybrid_router.ulid import new_ulid

log = logging.getLogger("hybrid_router.planning")
NO_WEAK_ENDPOINT = fallback("no_weak_endpoint")
DEFAULT_ROUTER = RouterSpec(name="router")


@dataclass(frozen=True)
class Caller:
    """Who asks, and the ids the client chose: its conversation key, and (a caller that keeps its own decision
    log) the decision id to answer under."""

    tenant_id: str = "local"
    device_id: str = "local"
    conversation_id: str | None = None
    decision_id: str | None = None


@dataclass(frozen=True)
class RoutingDefaults:
    """The settings' threshold or strong share (None: the operating point's, else the router's), the cascade
    policy (None: no cascade mode here) and whether plain `router` means cascade mode."""

    threshold: float | None = None
    strong_share: float | None = None
    cascade: CascadePolicy | None = None
    cascade_by_default: bool = False


class Planner:
    def __init__(
        self,
        catalog: ModelCatalog,
        defaults: RoutingDefaults = RoutingDefaults(),
        *,
        in_cloud: bool = False,
        privacy: PrivacyGate | None = None,
        conversations: Conversations = Conversations(),
        caps: SpendCaps | None = None,
    ):
        self.catalog = catalog
        self.defaults = defaults
        self.in_cloud = in_cloud  # a local answer planned in the cloud still cost a cloud request
        self.privacy = privacy
        self.conversations = conversations
        self.caps = caps

    @property
    def source(self) -> RouteSource | None:
        return self.catalog.source

    def plan(self, request: ChatCompletionRequest, caller: Caller = Caller()) -> Plan:
        """Raises UnknownModelError, RoutingError, InvalidRouting, SpendCapReached."""
        privacy = self.privacy.check(request) if self.privacy is not None else None
        prompt = request.last_user_text()
        if privacy is not None and self._remote:
            prompt = privacy.safe_text() or ""  # the cloud's router never sees the values
        plan = self.decide(request.model, prompt, caller)
        self.conversations.follow(request, plan, caller.conversation_id)
        PrivacyGate.apply(plan, privacy)
        if plan.route == "weak" and not self.catalog.has_weak:  # the strong endpoint answers, and says so
            plan.decided_route, plan.route, plan.reason = "weak", "strong", NO_WEAK_ENDPOINT
        if self.caps is not None:
            self.caps.apply(request, plan)
        return plan

    def decide(self, model: str, prompt: str, caller: Caller = Caller()) -> Plan:
        """The plan from the model name and the router alone (what POST /v1/route answers)."""
        decision_id = caller.decision_id or new_ulid()
        forced = self.catalog.forced(model)
        if forced is not None:
            return self._forced(model, forced, prompt, decision_id, caller)
        spec = self.catalog.router_spec(model)
        cascade = self._cascade_for(spec)
        if cascade is not None:
            scored = self._score(model, prompt, DEFAULT_ROUTER, None)
            settled = cascade.pre_route(scored.score)
            plan = self._plan(decision_id, model, scored, "strong" if settled == "strong" else "weak", ROUTED, caller)
            plan.threshold, plan.cascade = cascade.high, cascade if settled == "draft" else None
            plan.experiment_fields = {}  # the band, not the quality target, decides
            return plan
        scored = self._score(model, prompt, spec, decision_id)
        return self._plan(decision_id, model, scored, scored.route, ROUTED, caller)

    @property
    def _remote(self) -> bool:
        return self.source is not None and self.source.kind == REMOTE

    def _cascade_for(self, spec: RouterSpec) -> CascadePolicy | None:
        """`router-cascade[-<t>]` (t: the minimum confidence), or plain `router` with cascade mode on."""
        cascade = self.defaults.cascade
        if cascade is None:
            return None
        if spec.kind == CASCADE:
            return cascade.with_overrides(min_confidence=spec.threshold)
        if spec.kind is None and spec.threshold is None and self.defaults.cascade_by_default:
            return cascade
        return None

    def _score(self, model: str, prompt: str, spec: RouterSpec, decision_id: str | None) -> Scored:
        assert self.source is not None, "the catalog refuses router names without a source"
        try:
            defaults = self.defaults
            return self.source.decide(RouteQuery(prompt, spec, defaults.threshold, defaults.strong_share, decision_id))
        except UnknownRouterKind as exc:  # router-<kind> of a kind not installed: as unknown as any name
            raise UnknownModelError(model, self.catalog.names(), why=str(exc)) from None

    def _forced(self, model: str, route: Route, prompt: str, decision_id: str, caller: Caller) -> Plan:
        """A forced request never depends on the router: scored when one is at hand (the record keeps the
        score), else planned without one."""
        if self.source is None:
            return self._plan(decision_id, model, None, route, FORCED, caller)
        if self._remote:  # not worth a round trip to the cloud
            plan = self._plan(decision_id, model, None, route, FORCED, caller)
            plan.threshold, plan.router_id, plan.router_version = self.source.default_threshold, "remote", "unknown"
            return plan
        try:
            scored = self._score(model, prompt, DEFAULT_ROUTER, None)
        except RoutingError as exc:
            log.error("no router to score a forced request (%s); it is answered by %s", exc, model)
            return self._plan(decision_id, model, None, route, FORCED, caller)
        return self._plan(decision_id, model, scored, route, FORCED, caller)

    def _plan(
        self, decision_id: str, model: str, scored: Scored | None, route: Route, reason: str, caller: Caller
    ) -> Plan:
        plan = Plan(
            decision_id,
            model,
            route,
            reason,
            0.0,
            0.0,
            "none",
            "none",
            0.0,
            remote=self.in_cloud or self._remote,
            tenant_id=caller.tenant_id,
            device_id=caller.device_id,
        )
        if scored is not None:
            plan.score, plan.threshold, plan.router_latency_ms = scored.score, scored.threshold, scored.latency_ms
            plan.router_id, plan.router_version = scored.router_id, scored.router_version
            plan.experiment_fields = dict(scored.fields)
        return plan
