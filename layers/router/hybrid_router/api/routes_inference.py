"""Inference routes of the cloud API: the shared chat routes (hybrid_router.chat_routes) over the cloud's door,
and POST /v1/route (a decision only, for devices that do not run the router)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from hybrid_router.api.deps import caller, services
from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity
from hybrid_router.api.models import RouteRequest, RouteResponse
from hybrid_router.api.openapi import errors
from hybrid_router.api.services import Services
from hybrid_router.chat_routes import ChatHeaders, chat_router
from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import Answer, Pipeline, Plan, StreamingAnswer
from hybrid_router.planning import (
    Caller,
    ModelCatalog,
    Planner,
    RouteQuery,
    Routers,
    RoutingDefaults,
    RoutingError,
    Scored,
    UnknownRouterKind,
)
from hybrid_router.routing import Router, parse_router_model


class DeployedRouteSource:
    """The cloud's routers: the registry's active version (or router_path's), a running experiment's arms, and
    any other shipped kind a `router-<kind>` name asks for."""

    def __init__(self, svc: Services, experiments: bool = True):
        self.svc = svc
        self.experiments = experiments  # POST /v1/route answers with the active version only

    @property
    def kind(self) -> str:
        return self.svc.router.info.kind

    @property
    def default_threshold(self) -> float:
        return self.svc.router.info.default_threshold

    def serves_kind(self, kind: str | None) -> bool:
        self._router_for(kind)
        return True

    def _router_for(self, kind: str | None) -> Router:
        router = self.svc.router_for_kind(kind)
        if router is None:
            raise UnknownRouterKind(
                f"no router of kind {kind!r} is deployed here; this API serves 'router-{self.kind}'"
            )
        return router

    def decide(self, query: RouteQuery) -> Scored:
        try:
            running = self.svc.experiment_routers() if self.experiments else None
            if running is not None:
                experiment, control, candidate = running
                routers = Routers(control, experiment, candidate)
            else:
                routers = Routers(self.svc.router)
        except ApiError as exc:
            if exc.code != "router_unavailable":
                raise
            raise RoutingError(exc.message) from None
        return routers.decide(query, self._router_for)


def cloud_catalog(svc: Services, experiments: bool = True) -> ModelCatalog:
    return ModelCatalog(
        svc.weak_model_name(),
        svc.strong_model_name(),
        DeployedRouteSource(svc, experiments),
        has_weak=svc.has_weak_backend,
        has_strong=bool(svc.settings.strong_endpoint_name),
    )


def cloud_planner(
    svc: Services, threshold: float | None = None, strong_share: float | None = None, experiments: bool = True
) -> Planner:
    """The one planner with the cloud's settings: no privacy step, no caps, a conversation key but no memory of
    its earlier routes, and a missing weak endpoint answered by the strong one."""
    return Planner(cloud_catalog(svc, experiments), RoutingDefaults(threshold, strong_share), in_cloud=True)


class CloudRecorder:
    """The cloud's end of the pipeline: the record goes to DynamoDB; a failed write never withholds the answer."""

    def __init__(self, svc: Services, linked: bool):
        self.svc = svc
        self.linked = linked

    def begin(self, record: DecisionRecord) -> None:
        """A Lambda that dies mid-stream loses its buffered answer too; the device, which keeps its own log,
        records the stream (the cloud's record of what it served is written when the stream ends)."""

    def write(self, record: DecisionRecord) -> bool:
        return _save(self.svc, record, self.linked)


def _save(svc: Services, record: DecisionRecord, linked: bool) -> bool:
    """Stores the record of what was served; False when the write failed.

    A linked request (the caller sent `x-decision-id` and logs its own record) that delivered nothing (an error
    before the first token) stores nothing: the device's record is the only one. Anything delivered is stored
    under the caller's identity, whatever the caller logs or does (a stream the client hung up on included); the
    device's upload of the same id later merges into it (hybrid_router.decision.merge_served: the cloud's
    numbers stand).
    The answer is already paid for, so a failed write does not turn it into an error. Nothing is lost: the
    whole record goes to the error log (and a metric), and a plain answer carries it back in
    `routing.unstored_record`, which the caller can re-send to POST /v1/decisions (idempotent by id).
    """
    svc.telemetry.decision(record, source="chat")
    if linked and record.status == "error" and record.completion_tokens == 0:
        return True
    from hybrid_router.stores.dynamodb import AlreadyServed

    try:
        svc.call_store("put_served", svc.store.put_served, record)
    except ApiError as exc:
        svc.telemetry.store_failure("put_served", exc.message, record)
        return False
    except (AlreadyServed, ValueError) as exc:  # served under this id already; or a record DynamoDB cannot hold
        svc.telemetry.store_failure("put_served", str(exc), record)
        return False
    return True


def _claim(svc: Services, who: Identity, decision_id: str) -> None:
    """A caller's decision id is good for one chat call, and only its own (checked before anything is served)."""
    from hybrid_router.stores.dynamodb import DecisionIdTaken

    try:
        svc.call_store("claim", svc.store.claim, who.tenant_id, who.device_id, decision_id)
    except DecisionIdTaken as exc:
        if exc.foreign:
            raise ApiError(
                409,
                f"x-decision-id {decision_id} belongs to another device; send a new ULID.",
                code="decision_id_conflict",
                param="x-decision-id",
            ) from None
        raise ApiError(
            409,
            f"x-decision-id {decision_id} was already used for a chat call; send a new ULID for each request.",
            code="decision_id_reused",
            param="x-decision-id",
        ) from None


def _caller_decision_id(value: str | None) -> str | None:
    if value is None:
        return None
    from hybrid_router.ulid import is_ulid

    if not is_ulid(value.strip()):
        raise ApiError(422, "x-decision-id must be a 26-character ULID.", code="invalid_value", param="x-decision-id")
    return value.strip()


class CloudDoor:
    """The cloud's side of a chat request, for one caller."""

    def __init__(self, svc: Services, who: Identity):
        self.svc = svc
        self.who = who
        self._planner: Planner | None = None
        self.linked = False
        self.stream_limit_s = svc.settings.stream_limit_s

    @property
    def planner(self) -> Planner:
        """Built on first use, in a worker thread: naming the models may load the router."""
        if self._planner is None:
            self._planner = cloud_planner(self.svc)
        return self._planner

    @property
    def catalog(self) -> ModelCatalog:
        return self.planner.catalog

    def plan(self, request: ChatCompletionRequest, headers: ChatHeaders) -> Plan:
        """A caller that keeps its own decision log (the edge client) sends `x-decision-id`: the answer and the
        record carry that id, which links the record to the device's own (uploaded later, merged, so nothing
        counts twice). The id must be new and the caller's own (409 `decision_id_reused` /
        `decision_id_conflict`)."""
        decision_id = _caller_decision_id(headers.decision_id)
        who = self.who
        plan = self.planner.plan(request, Caller(who.tenant_id, who.device_id, headers.conversation_id, decision_id))
        if decision_id is not None:
            _claim(self.svc, who, decision_id)
            self.linked = True
        return plan

    def _pipeline(self) -> Pipeline:
        """The cloud's settings of the one pipeline: no fallback to the other side, no budget, the DynamoDB
        recorder, and the tenant's answer cache when it is turned on."""
        svc = self.svc
        return Pipeline(
            svc.weak_backend(),
            svc.strong_backend(),
            svc.weak_model_name(),
            svc.strong_model_name(),
            CloudRecorder(svc, self.linked),
            costs=svc.cost_model,
            fallback=False,
            default_max_tokens=svc.settings.default_max_tokens,
            cache=svc.answer_cache(self.who.tenant_id),
        )

    def complete(self, request: ChatCompletionRequest, plan: Plan, cancelled: Any = None) -> Answer:
        """One InvokeEndpoint call, never cut short: the endpoint bills the whole generation either way."""
        return self._pipeline().complete(request, plan)

    def stream(self, request: ChatCompletionRequest, plan: Plan) -> StreamingAnswer:
        return self._pipeline().stream(request, plan)


async def cloud_door(request: Request) -> CloudDoor:
    """The caller's door, under the identity the router's dependency checked (401/403 before anything else)."""
    return CloudDoor(request.app.state.services, request.state.identity)


chat_routes = chat_router(cloud_door, chat_errors=(409,), dependencies=[Depends(caller)])  # the device's too
router = APIRouter()


@router.post("/v1/route", response_model=RouteResponse, responses=errors(404, 422, 503))
def route(body: RouteRequest, _: Identity = Depends(caller), svc: Services = Depends(services)) -> RouteResponse:
    """Decision only. Nothing is stored: the caller logs its decision under the returned decision_id."""
    planner = cloud_planner(svc, body.threshold, body.strong_share, experiments=False)
    plan = planner.decide(body.model, body.text())
    spec = parse_router_model(body.model)
    svc.telemetry.route_only(plan.route, plan.router_latency_ms)
    return RouteResponse(
        decision_id=plan.decision_id,
        score=plan.score,
        threshold=plan.threshold,
        route=plan.route,
        model=svc.strong_model_name() if plan.route == "strong" else svc.weak_model_name(),
        router_id=plan.router_id,
        router_kind=(spec.kind if spec is not None else None) or svc.router.info.kind,
        router_version=plan.router_version,
        strong_model=svc.strong_model_name(),
        weak_model=svc.weak_model_name(),
        latency_ms=plan.router_latency_ms,
    )
