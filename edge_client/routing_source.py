"""Where a route decision comes from: the router file on this device, or the cloud's POST /v1/route."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from hybrid_router.routing import RouterLoadError, RouterSpec, available_kinds, load_router, load_router_for_kind
from hybrid_router.routing import operating_point as op
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


def resolve_operating_point(
    router: Router,
    data_dir: str | None,
    quality_target: float | None,
    quality_confidence: float | None,
    local_model: str | None = None,
) -> tuple[op.OperatingPoint | None, str]:
    """The operating point in force for this router: the data folder's (`hybrid-router calibrate`), else the packaged
    one, computed for this router id and version and for this local model (when named), at the target and
    confidence the settings name (recomputed from the point's labelled rows) or its own. (None, why) when none
    applies; RoutingError when the settings name a target that cannot be computed."""
    point, where = op.find(data_dir, router.info.router_id, router.info.version, local_model)
    if point is None:
        if quality_target is not None or quality_confidence is not None:
            model = f" and local model {local_model}" if local_model else ""
            raise RoutingError(
                f"quality_target is set but there is no operating point for router {router.info.router_id} "
                f"{router.info.version}{model} ({where}): run `hybrid-router label`, then `hybrid-router calibrate`"
            )
        return None, where
    try:
        return point.retarget(quality_target, quality_confidence), where
    except op.OperatingPointError as exc:
        raise RoutingError(f"quality target: {exc}") from exc


def local_model_name(settings: Any) -> str:
    """The name the device's local model answers under (as `hybrid-router label` writes it in rows)."""
    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    return LlamaCppBackend(settings.local_model_path, name=settings.local_model_name).name  # not loaded


def describe_operating_point(settings: Any) -> dict[str, Any]:
    """What sets the default threshold, for `config` and `doctor`: the quality target in force with its guarantee
    and what it rests on, or the expert setting or router default that replaces it."""
    from edge_client.routers import device_registry

    if settings.routing_mode == "remote":
        return {"in_force": False, "note": "routing_mode remote: the cloud's router sets the threshold"}
    try:
        source = LocalRouteSource(
            settings.router_path,
            registry=device_registry(settings),
            data_dir=settings.data_dir,
            quality_target=settings.quality_target,
            quality_confidence=settings.quality_confidence,
            local_model=local_model_name(settings),
        )
    except RoutingError as exc:
        return {"in_force": False, "error": str(exc), "note": str(exc)}
    info = source.router.info
    point = source.operating_point
    out: dict[str, Any] = {"router": f"{info.router_id} {info.version}"}
    if point is None:
        out.update(in_force=False, threshold=info.default_threshold, source=source.operating_point_source)
        out["note"] = (
            f"no quality target for router {info.router_id} {info.version} with local model "
            f"{local_model_name(settings)} ({source.operating_point_source}); "
            f"threshold {info.default_threshold:.4f} from the router file. Run `hybrid-router label`, then "
            "`hybrid-router calibrate`"
        )
        return out
    out.update(
        in_force=settings.threshold is None and settings.strong_share is None,
        quality_target=point.quality_target,
        quality_confidence=point.quality_confidence,
        threshold=point.threshold,
        met=point.met,
        guarantee=point.guarantee,
        rows=point.rows,
        families=list(point.families),
        computed_at=point.computed_at,
        local_model=point.local_model,
        labels_file=point.labels_file,
        source=source.operating_point_source,
        summary=point.summary(),
    )
    if not out["in_force"]:
        expert = "threshold" if settings.threshold is not None else "strong_share"
        out["note"] = f"the expert setting {expert} replaces the quality target ({point.summary()})"
    else:
        out["note"] = point.summary()
    return out


class LocalRouteSource:
    """Scores with router.onnx in this process (onnxruntime, one thread).

    The router is `router_path` when given; else the active version of the device's router registry
    (edge_client.routers), with its running experiment; else the packaged router.

    The default threshold is the quality target's operating point (resolve_operating_point) when one was computed
    for this router and for `local_model` (the device's local model; None: not checked), else the router's own. A
    threshold or strong share the caller gives replaces it (expert settings, `router-<kind>-<t>` names), and only
    decisions made at the operating point name its target."""

    def __init__(
        self,
        router_path: str | None = None,
        registry: Any = None,
        data_dir: str | None = None,
        quality_target: float | None = None,
        quality_confidence: float | None = None,
        local_model: str | None = None,
    ):
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
        self.operating_point, self.operating_point_source = resolve_operating_point(
            self._default, data_dir, quality_target, quality_confidence, local_model
        )
        self.default_threshold = (
            self.operating_point.threshold if self.operating_point else self._default.info.default_threshold
        )

    @property
    def router(self) -> Router:
        """The router `router` names: the one the operating point belongs to."""
        return self._default

    def _target_fields(self) -> dict[str, Any]:
        point = self.operating_point
        assert point is not None
        return {"quality_target": point.quality_target, "quality_confidence": point.quality_confidence}

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
        if spec.threshold is not None:
            threshold, strong_share = spec.threshold, None
        at_target = router is self._default and self.operating_point is not None
        at_target = at_target and threshold is None and strong_share is None
        if at_target:
            threshold = self.default_threshold
        if self.experiment is not None and router is self._default and decision_id is not None:
            from hybrid_router.experiments import decide

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
                fields={**arm.fields, **(self._target_fields() if at_target and arm.router is router else {})},
            )
        if spec.threshold is None and spec.kind is not None and spec.kind != self.kind:
            threshold, strong_share = None, None  # another router: its own default threshold
        decision = router.decide(prompt, threshold=threshold, strong_share=strong_share)
        return Scored(
            score=decision.score,
            threshold=decision.threshold,
            route=decision.route,
            latency_ms=decision.latency_ms,
            router_id=router.info.router_id,
            router_version=router.info.version,
            fields=self._target_fields() if at_target else {},
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
