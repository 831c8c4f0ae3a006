"""Where a route decision comes from: the router file on this device, or the cloud's POST /v1/route."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from hybrid_router.routing import RouterLoadError, RouterSpec, available_kinds, load_router, load_router_for_kind
from hybrid_router.routing.router import Router


class RoutingError(RuntimeError):
    """No decision could be made (router file unreadable, cloud router unreachable)."""


class UnknownRouterKind(RoutingError):
    """A `router-<kind>` name asks for a kind that is not installed: the caller's mistake, not an outage."""


@dataclass(frozen=True)
class Scored:
    score: float
    threshold: float
    route: str
    latency_ms: float
    router_id: str
    router_version: str
    fields: dict[str, Any] = field(default_factory=dict)  # a router experiment's record fields


class RouteSource(Protocol):
    kind: str
    default_threshold: float

    def decide(
        self,
        prompt: str,
        spec: RouterSpec,
        threshold: float | None,
        strong_share: float | None,
        decision_id: str | None = None,
    ) -> Scored: ...


class LocalRouteSource:
    """Scores with router.onnx in this process (onnxruntime, one thread).

    The router is `router_path` when given; else the active version of the device's router registry
    (edge_client.routers), with its running experiment; else the packaged router."""

    def __init__(self, router_path: str | None = None, registry: Any = None):
        self.router_path = router_path
        self.experiment: Any = None
        self._candidate: Router | None = None
        try:
            deployment = registry.deployment() if registry is not None and router_path is None else None
            if deployment is not None:
                router_path = str(registry.local_folder(deployment.active))
                experiment = deployment.experiment
                if experiment is not None and experiment.status == "running":
                    self.experiment = experiment
                    self._candidate = load_router(registry.local_folder(experiment.candidate), intra_op_num_threads=1)
            self._default = load_router(router_path, intra_op_num_threads=1)
        except Exception as exc:
            raise RoutingError(f"cannot load the router: {exc}") from exc
        self.kind = self._default.info.kind
        self.default_threshold = self._default.info.default_threshold

    def router_for(self, kind: str | None) -> Router:
        if kind is None or kind == self.kind:
            return self._default
        try:
            return load_router_for_kind(kind)
        except Exception as exc:
            if isinstance(exc, RouterLoadError) and kind not in available_kinds():
                raise UnknownRouterKind(str(exc)) from exc
            raise RoutingError(str(exc)) from exc

    def decide(
        self,
        prompt: str,
        spec: RouterSpec,
        threshold: float | None,
        strong_share: float | None,
        decision_id: str | None = None,
    ) -> Scored:
        router = self.router_for(spec.kind)
        if self.experiment is not None and router is self._default and decision_id is not None:
            from hybrid_router.experiments import decide

            if spec.threshold is not None:
                threshold, strong_share = spec.threshold, None
            arm = decide(
                self.experiment,
                self._default,
                self._candidate,
                prompt,
                decision_id,
                threshold=threshold,
                strong_share=strong_share,
            )
            return Scored(
                score=arm.score,
                threshold=arm.threshold,
                route=arm.route,
                latency_ms=arm.latency_ms,
                router_id=arm.router.info.router_id,
                router_version=arm.router.info.version,
                fields=arm.fields,
            )
        if spec.threshold is not None:
            threshold, strong_share = spec.threshold, None
        elif spec.kind is not None and spec.kind != self.kind:
            threshold, strong_share = None, None  # another router: its own default threshold
        decision = router.decide(prompt, threshold=threshold, strong_share=strong_share)
        return Scored(
            score=decision.score,
            threshold=decision.threshold,
            route=decision.route,
            latency_ms=decision.latency_ms,
            router_id=router.info.router_id,
            router_version=router.info.version,
        )


class RemoteRouteSource:
    """Asks the cloud API (POST /v1/route) for the decision: for devices too small to run the router."""

    def __init__(self, cloud_url: str, api_key: str | None, timeout_s: float = 10.0):
        self.base_url = cloud_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.kind = "remote"
        self.default_threshold = 0.5

    def decide(
        self,
        prompt: str,
        spec: RouterSpec,
        threshold: float | None,
        strong_share: float | None,
        decision_id: str | None = None,
    ) -> Scored:
        body: dict = {"model": spec.name, "prompt": prompt}
        if spec.threshold is None:
            if threshold is not None:
                body["threshold"] = threshold
            if strong_share is not None:
                body["strong_share"] = strong_share
        started = time.perf_counter()
        try:
            response = self._client.post("/v1/route", json=body)
        except httpx.HTTPError as exc:
            raise RoutingError(f"cloud router {self.base_url} unreachable: {exc}") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        if response.status_code == 404 and _error_code(response) == "model_not_found":
            raise UnknownRouterKind(f"the cloud router does not serve {spec.name!r}: {response.text[:200]}")
        if response.status_code != 200:
            raise RoutingError(f"cloud router answered {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            return Scored(
                score=float(data["score"]),
                threshold=float(data["threshold"]),
                route=str(data["route"]),
                latency_ms=latency_ms,
                router_id=str(data.get("router_id", "remote")),
                router_version=str(data.get("router_version", "unknown")),
            )
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: not JSON at all
            raise RoutingError(f"cloud router sent an unexpected answer: {response.text[:200]}") from exc


def _error_code(response: httpx.Response) -> str | None:
    """The `error.code` of an OpenAI-style error body, if the body is one."""
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
