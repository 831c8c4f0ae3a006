"""Where a route decision comes from: the router file on this device, or the cloud's POST /v1/route."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

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


class RouteSource(Protocol):
    kind: str
    default_threshold: float

    def decide(self, prompt: str, spec: RouterSpec, threshold: float | None,
               strong_share: float | None) -> Scored: ...


class LocalRouteSource:
    """Scores with router.onnx in this process (onnxruntime, one thread)."""

    def __init__(self, router_path: str | None = None):
        self.router_path = router_path
        try:
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

    def decide(self, prompt: str, spec: RouterSpec, threshold: float | None,
               strong_share: float | None) -> Scored:
        router = self.router_for(spec.kind)
        if spec.threshold is not None:
            threshold, strong_share = spec.threshold, None
        elif spec.kind is not None and spec.kind != self.kind:
            threshold, strong_share = None, None  # another router: its own default threshold
        decision = router.decide(prompt, threshold=threshold, strong_share=strong_share)
        return Scored(score=decision.score, threshold=decision.threshold, route=decision.route,
                      latency_ms=decision.latency_ms, router_id=router.info.router_id,
                      router_version=router.info.version)


class RemoteRouteSource:
    """Asks the cloud API (POST /v1/route) for the decision: for devices too small to run the router."""

    def __init__(self, cloud_url: str, api_key: str | None, timeout_s: float = 10.0):
        self.base_url = cloud_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.kind = "remote"
        self.default_threshold = 0.5

    def decide(self, prompt: str, spec: RouterSpec, threshold: float | None,
               strong_share: float | None) -> Scored:
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
            return Scored(score=float(data["score"]), threshold=float(data["threshold"]), route=str(data["route"]),
                          latency_ms=latency_ms, router_id=str(data.get("router_id", "remote")),
                          router_version=str(data.get("router_version", "unknown")))
        except (KeyError, TypeError, ValueError) as exc:  # ValueError: not JSON at all
            raise RoutingError(f"cloud router sent an unexpected answer: {response.text[:200]}") from exc


def _error_code(response: httpx.Response) -> str | None:
    """The `error.code` of an OpenAI-style error body, if the body is one."""
    try:
        return response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
