"""The device's side of the request pipeline: model names, the route decision, spend caps, the decision log.

Plain classes, no HTTP: the local server and the CLI both drive this. Answering is the core's one pipeline
(hybrid_router.pipeline) with the device's settings: fallbacks both ways, the spend caps, and a decision log that
fails closed (an answer whose record cannot be written is withheld).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from edge_client.config import Settings
from edge_client.routing_source import RouteSource, RoutingError
from hybrid_router.backends.base import ChatBackend, DraftingBackend
from hybrid_router.budget import SpendLedger
from hybrid_router.cache import AnswerCache, CachePolicy
from hybrid_router.cache.step import CacheStep
from hybrid_router.cascade import CascadeError, load_policy
from hybrid_router.costs import CostModel
from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import Answer, Pipeline, Plan, StreamingAnswer
from hybrid_router.planning import (
    Caller,
    Conversations,
    ModelCatalog,
    Planner,
    PrivacyGate,
    RoutingDefaults,
    SpendCapReached,
    SpendCaps,
    UnknownModelError,
)
from hybrid_router.privacy import DEFAULT_TRIGGERS, Detector, PrivacyMode, parse_kinds
from hybrid_router.privacy.detector import recognizers_for
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError

log = logging.getLogger("hybrid_router.edge")


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
        self.planner = self._planner()

    # names

    @property
    def weak_name(self) -> str:
        return self.weak.name

    @property
    def strong_name(self) -> str:
        return self.strong.name if self.strong is not None else (self.settings.strong_model or "strong")

    @property
    def can_cascade(self) -> bool:
        """Cascade mode needs a router score and a local model that drafts with token log-probabilities."""
        return self.route_source is not None and isinstance(self.weak, DraftingBackend)

    @property
    def catalog(self) -> ModelCatalog:
        return self.planner.catalog

    def model_names(self) -> list[str]:
        return self.catalog.names()

    # deciding: the core planner, with the device's steps

    def _planner(self) -> Planner:
        settings = self.settings
        catalog = ModelCatalog(self.weak_name, self.strong_name, self.route_source, can_cascade=self.can_cascade)
        defaults = RoutingDefaults(settings.threshold, settings.strong_share, self.cascade, settings.cascade)
        privacy = None
        if PrivacyMode(settings.privacy) is not PrivacyMode.OFF:
            kinds = settings.privacy_kinds
            detector = Detector(
                parse_kinds(kinds) if kinds is not None else DEFAULT_TRIGGERS,
                recognizers_for(settings.privacy_phone_regions),
            )
            privacy = PrivacyGate(PrivacyMode(settings.privacy), detector)
        conversations = Conversations(self.log.last_route, settings.conversation_affinity, settings.affinity_margin)
        caps = SpendCaps(self.pipeline.budget_problem, settings.forced_fallback)
        return Planner(catalog, defaults, privacy=privacy, conversations=conversations, caps=caps)

    def plan(self, request: ChatCompletionRequest, conversation_id: str | None = None) -> Plan:
        """The route for `request` (hybrid_router.planning.Planner; raises UnknownModelError, RoutingError,
        SpendCapReached). `conversation_id`: the client's own key (the `x-conversation-id` header)."""
        caller = Caller(self.settings.tenant_id, self.settings.device_id, conversation_id)
        return self.planner.plan(request, caller)

    # answering: the core pipeline

    def complete(
        self, request: ChatCompletionRequest, plan: Plan | None = None, cancelled: Callable[[], bool] | None = None
    ) -> Answer:
        return self.pipeline.complete(request, plan or self.plan(request), cancelled=cancelled)

    def stream(self, request: ChatCompletionRequest, plan: Plan | None = None) -> StreamingAnswer:
        return self.pipeline.stream(request, plan or self.plan(request))


__all__ = [
    "Answer",
    "EdgeService",
    "Plan",
    "RoutingError",
    "SpendCapReached",
    "StreamingAnswer",
    "UnknownModelError",
]
