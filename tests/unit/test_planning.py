"""The one planner (hybrid_router.planning) with the device's and the cloud's settings, over the packaged router
scored by onnxruntime: the same model names, the same threshold rules, the same refusals on both sides."""

from __future__ import annotations

import pytest

from hybrid_router.budget import BudgetExceeded, Cap
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.planning import (
    Caller,
    Conversations,
    ModelCatalog,
    Planner,
    RouteQuery,
    Routers,
    RoutingDefaults,
    RoutingError,
    Scored,
    SpendCapReached,
    SpendCaps,
    UnknownModelError,
    UnknownRouterKind,
)
from hybrid_router.routing import Router, load_router

PROMPT = "Prove that there are infinitely many primes."


class PackagedSource:
    """The packaged router, as both servers' sources score with it (Routers.decide)."""

    def __init__(self, router: Router, broken: bool = False):
        self.router = router
        self.broken = broken
        self.kind = router.info.kind
        self.default_threshold = router.info.default_threshold

    def serves_kind(self, kind: str | None) -> bool:
        self._other(kind or "")
        return True

    def _other(self, kind: str) -> Router:
        if kind in (None, "", self.kind):
            return self.router
        raise UnknownRouterKind(f"no router of kind {kind!r}")

    def decide(self, query: RouteQuery) -> Scored:
        if self.broken:
            raise RoutingError("router file unreadable")
        return Routers(self.router).decide(query, self._other)


@pytest.fixture(scope="module")
def router() -> Router:
    return load_router(None)


def ask(model: str, text: str = PROMPT) -> ChatCompletionRequest:
    return ChatCompletionRequest(model=model, messages=[{"role": "user", "content": text}])


def device(router: Router, **defaults: float) -> Planner:
    return Planner(ModelCatalog("local-model", "cloud-model", PackagedSource(router)), RoutingDefaults(**defaults))


def cloud(router: Router, has_weak: bool = False) -> Planner:
    catalog = ModelCatalog("weak-endpoint", "strong-endpoint", PackagedSource(router), has_weak=has_weak)
    return Planner(catalog, in_cloud=True)


def test_both_servers_take_the_aliases_and_the_models_own_names(router) -> None:
    for planner in (device(router), cloud(router, has_weak=True)):
        for model, route in [("strong", "strong"), ("weak", "weak")]:
            plan = planner.plan(ask(model))
            assert (plan.route, plan.reason, plan.router_id) == (route, "forced", router.info.router_id)
    assert device(router).plan(ask("local-model")).route == "weak"
    assert cloud(router).plan(ask("strong-endpoint")).route == "strong"


def test_the_cloud_without_a_weak_endpoint_answers_strong_and_says_what_was_decided(router) -> None:
    with pytest.raises(UnknownModelError, match="'weak' does not exist here"):
        cloud(router).plan(ask("weak"))
    kind = router.info.kind
    plan = cloud(router).plan(ask(f"router-{kind}-1.0"))
    assert (plan.route, plan.reason, plan.decided_route, plan.remote) == (
        "strong",
        "fallback:no_weak_endpoint",
        "weak",
        True,
    )


def test_a_threshold_in_the_name_wins_over_the_settings(router) -> None:
    kind = router.info.kind
    planner = device(router, strong_share=0.99)
    named = planner.plan(ask(f"router-{kind}-1.0"))
    assert (named.threshold, named.route) == (1.0, "weak")
    assert planner.plan(ask(f"router-{kind}-0.0")).route == "strong"


def test_unknown_names_kinds_and_cascade_without_a_drafting_model_are_unknown_models(router) -> None:
    planner = device(router)
    for model, why in [
        ("gpt-17", "valid models"),
        ("router-nosuchkind-0.5", "nosuchkind"),
        ("router-cascade", "cascade"),
    ]:
        with pytest.raises(UnknownModelError, match=why):
            planner.plan(ask(model))


def test_a_forced_request_never_depends_on_the_router(router) -> None:
    planner = Planner(ModelCatalog("local-model", "cloud-model", PackagedSource(router, broken=True)))
    plan = planner.plan(ask("strong"))
    assert (plan.route, plan.reason, plan.router_id, plan.score) == ("strong", "forced", "none", 0.0)
    with pytest.raises(RoutingError):
        planner.plan(ask("router"))


def test_every_plan_names_its_conversation_and_the_caller(router) -> None:
    caller = Caller("acme", "device-a", conversation_id="chat-42", decision_id="01JDQ8Y3V0G6ZC9X2B7K5M4N1P")
    for planner in (device(router), cloud(router)):
        plan = planner.plan(ask("router"), caller)
        assert plan.experiment_fields["conversation_id"]
        assert (plan.tenant_id, plan.device_id, plan.decision_id) == ("acme", "device-a", caller.decision_id)


def test_affinity_keeps_a_follow_up_strong_after_a_strong_turn(router) -> None:
    kind = router.info.kind
    remembered = Conversations(last_route=lambda key: "strong", affinity=True, margin=1.0)
    planner = Planner(ModelCatalog("local-model", "cloud-model", PackagedSource(router)), conversations=remembered)
    follow_up = ChatCompletionRequest(
        model=f"router-{kind}-1.0",
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": "Suppose there were finitely many."},
            {"role": "user", "content": "and then?"},
        ],
    )
    plan = planner.plan(follow_up)
    assert (plan.route, plan.reason) == ("strong", "affinity:strong")


def test_spend_caps_answer_routed_requests_locally_and_refuse_forced_ones(router) -> None:
    over = BudgetExceeded(Cap("daily", 1.0, lambda now: now), 1.0, 0.0, 0.1)
    caps = SpendCaps(lambda request: over)
    planner = Planner(ModelCatalog("local-model", "cloud-model", PackagedSource(router)), caps=caps)
    kind = router.info.kind
    routed = planner.plan(ask(f"router-{kind}-0.0"))
    assert (routed.route, routed.reason) == ("weak", over.reason)
    with pytest.raises(SpendCapReached) as refused:
        planner.plan(ask("strong"))
    assert refused.value.status_code == 429
    lenient = Planner(planner.catalog, caps=SpendCaps(lambda request: over, forced_fallback=True))
    assert lenient.plan(ask("strong")).route == "weak"
