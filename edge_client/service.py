"""The device's side of the request pipeline: model names, the route decision, spend caps, the decision log.

Plain classes, no HTTP: the local server and the CLI both drive this. Answering is the core's one pipeline
(hybrid_router.pipeline) with the device's settings: fallbacks both ways, the spend caps, and a decision log that
fails closed (an answer whose record cannot be written is withheld).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edge_client.config import Settings
from edge_client.routing_source import RouteSource, RoutingError, Scored, UnknownRouterKind
from hybrid_router.backends.base import BackendError, ChatBackend, DraftingBackend
from hybrid_router.budget import BudgetExceeded, SpendLedger
from hybrid_router.cache import AnswerCache, CachePolicy
from hybrid_router.cache.step import CacheStep
from hybrid_router.cascade import CascadeError, CascadePolicy, load_policy
from hybrid_router.costs import CostModel
from hybrid_router.decision import DecisionRecord, Route
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import Answer, Pipeline, Plan, StreamingAnswer
from hybrid_router.privacy import DEFAULT_TRIGGERS, Detector, PrivacyCheck, PrivacyMode, parse_kinds
from hybrid_router.privacy.detector import recognizers_for
from hybrid_router.routing import RouterSpec, parse_router_model
from hybrid_router.routing.conversation import client_conversation_id, conversation_key, features, follow_conversation
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError
from hybrid_router.ulid import new_ulid

log = logging.getLogger("hybrid_router.edge")
CASCADE = "cascade"  # the router kind in `router-cascade[-<min confidence>]`


class UnknownModelError(ValueError):
    def __init__(self, model: str, valid: list[str], why: str | None = None):
        super().__init__(
            f"unknown model {model!r}{f' ({why})' if why else ''}; valid models: {', '.join(valid)} "
            "(or router-<kind>-<threshold>, e.g. router-mf-0.2)"
        )
        self.model = model
        self.valid = valid


class SpendCapReached(BackendError):
    """A request that names the strong model while a spend cap is reached: refused, never answered locally
    instead (unless the user turned on forced_fallback)."""

    def __init__(self, over: BudgetExceeded):
        super().__init__(
            f"the strong model was asked for by name, but {over}; raise the cap, wait for it to reset, or ask "
            "for `router` or the local model",
            cause=over.reason.replace(":", "_"),
            status_code=429,
        )


class DecisionLogRecorder:
    """Fail closed: an answer whose decision cannot be logged (disk full, read-only) is not returned.

    DecisionLogError reaches the caller (HTTP 507 from the server, one error line from the CLI), so no decision
    ever goes unrecorded. A stream that already started is cut with that error instead.
    """

    def __init__(self, decision_log: DecisionLog):
        self.log = decision_log

    def begin(self, record: DecisionRecord) -> None:
        self.log.append_open(record)

    def write(self, record: DecisionRecord) -> bool:
        try:
            self.log.append(record)
        except DecisionLogError:
            log.error("decision %s not logged; the answer is withheld", record.decision_id)
            raise
        return True


def answer_cache(settings: Settings) -> CacheStep | None:
    """The device's answer cache (per data folder, its own SQLite file beside the decision log), or None when
    the `cache` setting is off."""
    if not settings.cache:
        return None
    store = AnswerCache(
        settings.answer_cache_path, settings.cache_ttl_s, settings.cache_max_entries, settings.cache_max_bytes
    )
    return CacheStep(store, CachePolicy(enabled=True, any_temperature=settings.cache_any_temperature))


class EdgeService:
    def __init__(
        self,
        settings: Settings,
        weak: ChatBackend,
        strong: ChatBackend | None,
        route_source: RouteSource | None,
        decision_log: DecisionLog,
        costs: CostModel | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.settings = settings
        self.weak = weak
        self.strong = strong
        self.route_source = route_source
        self.log = decision_log
        self.costs = costs or CostModel.default()
        self.clock = clock
        self.budget = SpendLedger(
            decision_log.spend_since, clock, settings.daily_cap_usd, settings.monthly_cap_usd, self.costs
        )
        try:
            self.cascade = load_policy().with_overrides(
                settings.cascade_low, settings.cascade_high, settings.cascade_signal, settings.cascade_min_confidence
            )
        except CascadeError as exc:
            raise RoutingError(f"cascade mode: {exc}") from exc
        kinds = settings.privacy_kinds
        self.privacy_detector = Detector(
            parse_kinds(kinds) if kinds is not None else DEFAULT_TRIGGERS,
            recognizers_for(settings.privacy_phone_regions),
        )
        self.pipeline = Pipeline(
            weak,
            strong,
            self.weak_name,
            self.strong_name,
            DecisionLogRecorder(decision_log),
            self.costs,
            self.budget,
            fallback=True,
            fallback_forced=settings.forced_fallback,
            overflow_to_strong=settings.local_overflow == "strong",
            store_prompts=settings.store_prompts,
            default_max_tokens=settings.max_tokens,
            cache=answer_cache(settings),
        )

    # names

    @property
    def weak_name(self) -> str:
        return self.weak.name

    @property
    def strong_name(self) -> str:
        return self.strong.name if self.strong is not None else (self.settings.strong_model or "strong")

    def example_router_name(self) -> str | None:
        if self.route_source is None or self.route_source.kind == "remote":
            return None
        threshold = self.settings.threshold
        if threshold is None:
            threshold = self.route_source.default_threshold
        return f"router-{self.route_source.kind}-{threshold:.3f}"

    @property
    def can_cascade(self) -> bool:
        """Cascade mode needs a router score and a local model that drafts with token log-probabilities."""
        return self.route_source is not None and isinstance(self.weak, DraftingBackend)

    def model_names(self) -> list[str]:
        names = ["router"]
        example = self.example_router_name()
        if example:
            names.append(example)
        if self.can_cascade:
            names.append(f"router-{CASCADE}")
        names.append(self.weak_name)
        if self.strong_name not in names:
            names.append(self.strong_name)
        return names

    def serves(self, model: str) -> bool:
        """Whether `model` names something a chat request may ask for (GET /v1/models/{model})."""
        if model in (self.weak_name, self.strong_name, "weak", "strong"):
            return True
        spec = parse_router_model(model)
        if spec is None or self.route_source is None:
            return False
        if spec.kind == CASCADE:
            return self.can_cascade
        router_for = getattr(self.route_source, "router_for", None)
        if router_for is None:  # remote routing: the cloud decides which router names it serves
            return True
        try:
            router_for(spec.kind)
        except UnknownRouterKind:
            return False
        return True

    # deciding

    def cascade_for(self, spec: RouterSpec | None) -> CascadePolicy | None:
        """The cascade policy a router name asks for: `router-cascade[-<t>]` (t: the minimum confidence), or plain
        `router` when the `cascade` setting is on; None for every other name."""
        if spec is None:
            return None
        if spec.kind == CASCADE:
            return self.cascade.with_overrides(min_confidence=spec.threshold)
        if spec.kind is None and spec.threshold is None and self.settings.cascade:
            return self.cascade
        return None

    def check_privacy(self, request: ChatCompletionRequest) -> PrivacyCheck | None:
        """The privacy step: personal data and secrets in the conversation (None when the setting is off)."""
        mode = PrivacyMode(self.settings.privacy)
        if mode is PrivacyMode.OFF:
            return None
        texts = [message.text() for message in request.messages]
        last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=len(texts) - 1)
        return PrivacyCheck.of(texts, last_user, mode, self.privacy_detector)

    @staticmethod
    def apply_privacy(plan: Plan, check: PrivacyCheck | None) -> Plan:
        """A private conversation stays on the device (`local`, or `redact` when nothing could be redacted) or is
        refused, whatever the router or a forced model name chose; `redact` keeps the route."""
        plan.privacy = check
        if check is not None and (check.keeps_local or check.refuses):
            plan.route, plan.reason, plan.cascade = "weak", check.reason, None
        return plan

    def plan(self, request: ChatCompletionRequest, conversation_id: str | None = None) -> Plan:
        """Decides the route (raises UnknownModelError, RoutingError). In cascade mode the router score alone
        settles the clear cases; in the band the plan carries the policy and the local model drafts first.
        `conversation_id`: the client's own key (the `x-conversation-id` header), else one is derived; the
        conversation's earlier routes may keep it strong (follow_conversation). Private data overrides both
        before the budget is asked (check_privacy, apply_privacy); a remote router is given the redacted prompt."""
        model = request.model
        decision_id = new_ulid()
        privacy = self.check_privacy(request)
        prompt = request.last_user_text()
        if privacy is not None and self.route_source is not None and self.route_source.kind == "remote":
            prompt = privacy.safe_text() or ""  # the cloud's router never sees the values
        names: dict[str, Route] = {
            "weak": "weak",
            "strong": "strong",
            self.weak_name: "weak",
            self.strong_name: "strong",
        }
        forced = names.get(model)
        spec: RouterSpec | None = None
        if forced is None:
            spec = parse_router_model(model)
            if spec is None or self.route_source is None:
                raise UnknownModelError(model, self.model_names())
        who: dict[str, Any] = {"tenant_id": self.settings.tenant_id, "device_id": self.settings.device_id}
        cascade = self.cascade_for(spec)
        if cascade is not None and not self.can_cascade:
            raise UnknownModelError(model, self.model_names(), why="cascade mode needs the local llama.cpp model")
        plan: Plan | None = None
        scored: Scored | None = None
        if cascade is not None:
            assert self.route_source is not None
            scored = self.route_source.decide(
                prompt, RouterSpec(name="router"), self.settings.threshold, self.settings.strong_share
            )
            settled = cascade.pre_route(scored.score)
            plan = Plan(
                decision_id,
                model,
                "strong" if settled == "strong" else "weak",
                "routed",
                scored.score,
                cascade.high,
                scored.router_id,
                scored.router_version,
                scored.latency_ms,
                remote=self.route_source.kind == "remote",
                cascade=cascade if settled == "draft" else None,
                **who,
            )
        elif self.route_source is None:
            pass  # forced, and no router here at all: planned below
        elif forced is not None and self.route_source.kind == "remote":
            plan = Plan(
                decision_id,
                model,
                forced,
                "forced",
                0.0,
                self.route_source.default_threshold,
                "remote",
                "unknown",
                0.0,
                remote=True,
                **who,
            )
        else:
            assert self.route_source is not None
            try:
                scored = self.route_source.decide(
                    prompt,
                    spec or RouterSpec(name="router"),
                    self.settings.threshold,
                    self.settings.strong_share,
                    decision_id=decision_id,
                )
            except UnknownRouterKind as exc:  # router-<kind> of a kind not installed: as unknown as any name
                raise UnknownModelError(model, self.model_names(), why=str(exc)) from None
            except RoutingError as exc:
                if forced is None:
                    raise
                log.error("no router to score a forced request (%s); it is answered by %s", exc, model)
                scored = None
        if plan is None and scored is None:  # a forced request never depends on the router
            plan = Plan(decision_id, model, forced or "weak", "forced", 0.0, 0.0, "none", "none", 0.0, **who)
        elif plan is None and scored is not None:
            plan = Plan(
                decision_id,
                model,
                forced or scored.route,
                "forced" if forced else "routed",
                scored.score,
                scored.threshold,
                scored.router_id,
                scored.router_version,
                scored.latency_ms,
                remote=getattr(self.route_source, "kind", None) == "remote",
                experiment_fields=dict(scored.fields),
                **who,
            )
        assert plan is not None
        self.follow_conversation(request, plan, conversation_id)
        plan = self.apply_privacy(plan, privacy)
        if plan.route == "strong":
            over = self.pipeline.budget_problem(request)
            if over is not None and plan.reason == "forced" and not self.settings.forced_fallback:
                raise SpendCapReached(over)
            if over is not None:
                plan.route, plan.reason = "weak", over.reason
        return plan

    def follow_conversation(self, request: ChatCompletionRequest, plan: Plan, given_key: str | None) -> None:
        """The conversation step: the plan records the conversation's key, and a message the router sent to the
        local model stays strong while the conversation's last turn here was answered strong, unless it is
        independent of the earlier turns and clearly easy (hybrid_router.routing.conversation)."""
        extra = request.model_extra or {}
        client_id = client_conversation_id(given_key, extra.get("metadata"))
        key = conversation_key(request.messages, client_id, user=extra.get("user"))
        plan.experiment_fields["conversation_id"] = key
        if not self.settings.conversation_affinity or plan.reason != "routed" or plan.cascade is not None:
            return
        if plan.route != "weak":
            return
        previous = self.log.last_route(key)
        conversation = features(
            request.messages, key, previous, request.last_user_text(), key_given=client_id is not None
        )
        plan.route, plan.reason = follow_conversation(
            plan.route, plan.score, plan.threshold, conversation, self.settings.affinity_margin
        )

    # answering: the core pipeline

    def complete(
        self, request: ChatCompletionRequest, plan: Plan | None = None, cancelled: Callable[[], bool] | None = None
    ) -> Answer:
        return self.pipeline.complete(request, plan or self.plan(request), cancelled=cancelled)

    def stream(self, request: ChatCompletionRequest, plan: Plan | None = None) -> StreamingAnswer:
        return self.pipeline.stream(request, plan or self.plan(request))


__all__ = ["Answer", "EdgeService", "Plan", "RoutingError", "StreamingAnswer", "UnknownModelError"]
