"""Where a route decision comes from: the router file on this device, or the cloud's POST /v1/route."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx

from hybrid_router.decision import as_route
from hybrid_router.planning import RouteQuery, Routers, RouteSource, RoutingError, Scored, UnknownRouterKind
from hybrid_router.routing import RouterLoadError, available_kinds, load_router, load_router_for_kind
from hybrid_router.routing import operating_point as op
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR, Router

log = logging.getLogger("hybrid_router.edge")


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


@dataclass(frozen=True)
class RouterStatus:
    """Which router routes here, and, when it is not the one the settings or the deployment name, which one that is
    and why it cannot load (`problem`): the device then routes with the last good router (or the packaged one)."""

    router_id: str
    version: str
    kind: str
    source: str  # "router_path", "active version", "last good version", "packaged"
    wanted: str | None = None
    problem: str | None = None
    experiment_problem: str | None = None

    @property
    def degraded(self) -> bool:
        return self.problem is not None or self.experiment_problem is not None

    @property
    def in_use(self) -> str:
        return f"{self.router_id}@{self.version}"

    def describe(self) -> str:
        said = []
        if self.problem is not None:
            said.append(f"{self.wanted} cannot be loaded ({self.problem}); routing with {self.in_use} ({self.source})")
        if self.experiment_problem is not None:
            said.append(f"the experiment is paused: {self.experiment_problem}")
        return "; ".join(said) or f"routing with {self.in_use} ({self.source})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "router_id": self.router_id,
            "version": self.version,
            "kind": self.kind,
            "source": self.source,
            "degraded": self.degraded,
            "wanted": self.wanted,
            "problem": self.problem,
            "experiment_problem": self.experiment_problem,
        }


def _status(router: Router, source: str, **problems: str) -> RouterStatus:
    info = router.info
    return RouterStatus(info.router_id, info.version, info.kind, source, **problems)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


@dataclass(frozen=True)
class _Unreadable:
    """A deployment that could not be read at all (equal to another with the same problem: logged once)."""

    problem: str


@dataclass(frozen=True)
class _Routing:
    """What routes at one moment: the router, the running experiment with its candidate, and how they were found."""

    router: Router
    status: RouterStatus
    deployment: Any = None
    experiment: Any = None
    candidate: Router | None = None
    operating_point: op.OperatingPoint | None = None  # the quality target's, for this router and local model
    operating_point_source: str = ""


class LocalRouteSource:
    """Scores with router.onnx in this process (onnxruntime, one thread).

    The router is `router_path` when given; else the active version of the device's router registry
    (edge_client.routers), with its running experiment; else the packaged router. The registry's deployment is
    re-read at most every `refresh_s` seconds (hybrid_router.registry.LiveDeployment), so `routers use`, `routers
    pull` and experiments starting or ending reach a running server without a restart.

    A version is loaded in this process only once it has loaded in a child process (edge_client.routers.prove). If
    the router asked for cannot load, the last good one routes (the one in use before a reload, else the versions
    proven on this device, newest first, else the packaged router); `status` says so, and so does the log.

    The default threshold is the quality target's operating point (resolve_operating_point) when one was computed
    for the router in use and for `local_model` (the device's local model; None: not checked), else the router's
    own. A threshold or strong share the caller gives replaces it (expert settings, `router-<kind>-<t>` names), and
    only decisions made at the operating point name its target."""

    def __init__(
        self,
        router_path: str | None = None,
        registry: Any = None,
        refresh_s: float = 30.0,
        data_dir: str | None = None,
        quality_target: float | None = None,
        quality_confidence: float | None = None,
        local_model: str | None = None,
    ):
        self.router_path = router_path
        self._target = (data_dir, quality_target, quality_confidence, local_model)
        self._registry = registry if router_path is None else None
        self._live = None
        if self._registry is not None:
            from hybrid_router.registry import LiveDeployment

            self._live = LiveDeployment(self._registry.deployment, refresh_s)
        self._lock = threading.Lock()
        self._routing = self._build(self._read_deployment(), previous=None)

    # what routes

    def _read_deployment(self) -> Any:
        """The deployment (None: no active version), or _Unreadable when it has never been read (a damaged file)."""
        if self._live is None:
            return None
        try:
            return self._live.current()
        except Exception as exc:
            return _Unreadable(f"the device's deployment cannot be read: {_one_line(exc)}")

    def _now(self) -> _Routing:
        """The routing in force, rebuilt when the deployment has changed since it was built."""
        deployment = self._read_deployment()
        if deployment == self._routing.deployment:
            return self._routing
        with self._lock:
            if deployment != self._routing.deployment:
                self._routing = self._build(deployment, previous=self._routing)
        return self._routing

    def _version(self, ref: Any) -> Router:
        from edge_client.routers import prove

        assert self._registry is not None, "versions come from a registry"
        return load_router(prove(self._registry, ref), intra_op_num_threads=1)

    def _wanted(self, deployment: Any) -> tuple[str, str]:
        """The router the settings and the deployment ask for, and where it comes from."""
        if self.router_path is not None:
            return self.router_path, "router_path"
        if isinstance(deployment, _Unreadable):
            return "the active version", "active version"
        if deployment is not None:
            return str(deployment.active), "active version"
        return "the packaged router", "packaged"

    def _load_wanted(self, deployment: Any) -> Router:
        if self.router_path is not None:
            return load_router(self.router_path, intra_op_num_threads=1)
        if isinstance(deployment, _Unreadable):
            raise RoutingError(deployment.problem)
        if deployment is not None:
            return self._version(deployment.active)
        return load_router(None, intra_op_num_threads=1)

    def _build(self, deployment: Any, previous: _Routing | None) -> _Routing:
        routing = self._build_routers(deployment, previous)
        data_dir, target, confidence, local_model = self._target
        point, where = resolve_operating_point(routing.router, data_dir, target, confidence, local_model)
        return replace(routing, operating_point=point, operating_point_source=where)

    def _build_routers(self, deployment: Any, previous: _Routing | None) -> _Routing:
        wanted, source = self._wanted(deployment)
        try:
            router = self._load_wanted(deployment)
        except Exception as exc:
            router, source = self._last_good(previous, deployment)
            status = _status(router, source, wanted=wanted, problem=_one_line(exc))
            log.error("ROUTER NOT LOADED: %s", status.describe())
            return _Routing(router, status, deployment)
        experiment = getattr(deployment, "experiment", None)
        if experiment is None or experiment.status != "running":
            return _Routing(router, _status(router, source), deployment)
        try:
            candidate = self._version(experiment.candidate)
        except Exception as exc:
            problem = f"candidate {experiment.candidate} cannot be loaded ({_one_line(exc)})"
            status = _status(router, source, experiment_problem=problem)
            log.error("ROUTER EXPERIMENT %s NOT RUNNING: %s", experiment.experiment_id, status.describe())
            return _Routing(router, status, deployment)
        return _Routing(router, _status(router, source), deployment, experiment, candidate)

    def _last_good(self, previous: _Routing | None, deployment: Any) -> tuple[Router, str]:
        """The router in use before (on a reload), else the newest proven version that loads, else the packaged
        router. RoutingError if not even that loads."""
        if previous is not None:
            return previous.router, previous.status.source if previous.status.problem else "last good version"
        if self._registry is not None:
            from edge_client.routers import proven_versions

            failed = getattr(deployment, "active", None)
            for ref in proven_versions(self._registry):
                if ref == failed:
                    continue
                try:
                    return self._version(ref), "last good version"
                except Exception as exc:
                    log.warning("proven router %s cannot be loaded either: %s", ref, exc)
        try:
            return load_router(DEFAULT_ROUTER_DIR, intra_op_num_threads=1), "packaged"
        except Exception as exc:
            raise RoutingError(f"cannot load the router, nor the packaged one: {exc}") from exc

    @property
    def status(self) -> RouterStatus:
        return self._now().status

    @property
    def experiment(self) -> Any:
        return self._now().experiment

    @property
    def kind(self) -> str:
        return self._now().router.info.kind

    @property
    def router(self) -> Router:
        """The router `router` names: the one the operating point belongs to."""
        return self._now().router

    @property
    def operating_point(self) -> op.OperatingPoint | None:
        return self._now().operating_point

    @property
    def operating_point_source(self) -> str:
        return self._now().operating_point_source

    @property
    def default_threshold(self) -> float:
        routing = self._now()
        point = routing.operating_point
        return point.threshold if point is not None else routing.router.info.default_threshold

    def router_for(self, kind: str | None) -> Router:
        routing = self._now()
        if kind is None or kind == routing.router.info.kind:
            return routing.router
        try:
            return load_router_for_kind(kind)
        except Exception as exc:
            if isinstance(exc, RouterLoadError) and kind not in available_kinds():
                raise UnknownRouterKind(str(exc)) from exc
            raise RoutingError(str(exc)) from exc

    def serves_kind(self, kind: str | None) -> bool:
        self.router_for(kind)
        return True

    def decide(self, query: RouteQuery) -> Scored:
        routing = self._now()  # one snapshot per decision: a reload never mixes two deployments in one record
        routers = Routers(routing.router, routing.experiment, routing.candidate, routing.operating_point)
        return routers.decide(query, self.router_for)


class UnavailableRouteSource:
    """No router loads at all, not even the packaged one: routed requests fail with the reason (503), requests that
    name a model are answered all the same."""

    kind = "unavailable"
    default_threshold = 0.5

    def __init__(self, problem: str):
        self.status = RouterStatus("none", "none", "none", "none", wanted="a router", problem=problem)

    def router_for(self, kind: str | None) -> Router:
        raise RoutingError(f"no router can be loaded: {self.status.problem}")

    def serves_kind(self, kind: str | None) -> bool:
        raise RoutingError(f"no router can be loaded: {self.status.problem}")

    def decide(self, query: RouteQuery) -> Scored:
        raise RoutingError(f"no router can be loaded: {self.status.problem}")


class RemoteRouteSource:
    """Asks the cloud API (POST /v1/route) for the decision: for devices too small to run the router."""

    def __init__(self, cloud_url: str, api_key: str | None, timeout_s: float = 10.0):
        self.base_url = cloud_url.rstrip("/")
        headers = {"x-api-key": api_key} if api_key else {}
        self._client = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)
        self.kind = "remote"
        self.default_threshold = 0.5

    def serves_kind(self, kind: str | None) -> bool:
        return True  # the cloud decides which router names it serves

    def decide(self, query: RouteQuery) -> Scored:
        spec = query.spec
        body: dict = {"model": spec.name, "prompt": query.prompt}
        if spec.threshold is None:
            if query.threshold is not None:
                body["threshold"] = query.threshold
            if query.strong_share is not None:
                body["strong_share"] = query.strong_share
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
                route=as_route(data["route"]),
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


__all__ = ["RouteSource", "RoutingError", "Scored", "UnknownRouterKind"]
