"""Where a route decision comes from: a `RouteSource` scores a prompt for a router name.

The device's sources (its router file, or the cloud's POST /v1/route) and the cloud's (the deployed version) all
score through `Routers.decide`: the active router, a running experiment's arms, and the quality target's operating
point, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from hybrid_router.decision import Route, as_route
from hybrid_router.planning.errors import InvalidRouting
from hybrid_router.routing import Router, RouterSpec
from hybrid_router.routing.operating_point import OperatingPoint


@dataclass(frozen=True)
class Scored:
    score: float
    threshold: float
    route: Route
    latency_ms: float
    router_id: str
    router_version: str
    fields: dict[str, Any] = field(default_factory=dict)  # a router experiment's and the quality target's fields


@dataclass(frozen=True)
class RouteQuery:
    """What a source is asked: score `prompt` for the router `spec` names, at the settings' threshold or strong
    share; `decision_id` (routed requests only) picks a running experiment's arm."""

    prompt: str
    spec: RouterSpec
    threshold: float | None = None
    strong_share: float | None = None
    decision_id: str | None = None


class RouteSource(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def default_threshold(self) -> float: ...

    def decide(self, query: RouteQuery) -> Scored:
        """Raises UnknownRouterKind, RoutingError, InvalidRouting."""
        ...

    def serves_kind(self, kind: str | None) -> bool:
        """Whether `router-<kind>` names a router here (raises RoutingError when it exists but cannot load)."""
        ...


@dataclass(frozen=True)
class Routers:
    """What routes at one moment: the active router, a running experiment with its candidate, and the operating
    point of the quality target (for the active router and the local model)."""

    router: Router
    experiment: Any = None
    candidate: Router | None = None
    operating_point: OperatingPoint | None = None

    def decide(self, query: RouteQuery, other_kind: Callable[[str], Router]) -> Scored:
        """A threshold in the name wins over the settings' threshold and strong share; with neither, the operating
        point's threshold (and the record names its target). Another kind routes at its own default threshold."""
        prompt, spec, threshold, strong_share = query.prompt, query.spec, query.threshold, query.strong_share
        router = self.router if spec.kind in (None, self.router.info.kind) else other_kind(spec.kind or "")
        if spec.threshold is not None:
            threshold, strong_share = spec.threshold, None
        elif router is not self.router:
            threshold, strong_share = None, None
        target: dict[str, Any] = {}
        point = self.operating_point
        if router is self.router and point is not None and threshold is None and strong_share is None:
            threshold = point.threshold
            target = {"quality_target": point.quality_target, "quality_confidence": point.quality_confidence}
        try:
            if self.experiment is not None and router is self.router and query.decision_id is not None:
                return self._arm(prompt, threshold, strong_share, query.decision_id, target)
            decision = router.decide(prompt, threshold=threshold, strong_share=strong_share)
        except ValueError as exc:  # e.g. strong_share on a router without a calibration table
            raise InvalidRouting(f"Cannot route this request: {exc}") from None
        info = router.info
        return Scored(
            float(decision.score),
            float(decision.threshold),
            as_route(decision.route),
            float(decision.latency_ms),
            info.router_id,
            info.version,
            target,
        )

    def _arm(
        self, prompt: str, threshold: float | None, strong_share: float | None, decision_id: str, target: dict
    ) -> Scored:
        from hybrid_router.experiments import decide

        arm = decide(self.experiment, self.router, self.candidate, prompt, decision_id, threshold, strong_share)
        info = arm.router.info
        fields = {**arm.fields, **(target if arm.router is self.router else {})}
        return Scored(
            arm.score, arm.threshold, as_route(arm.route), arm.latency_ms, info.router_id, info.version, fields
        )
