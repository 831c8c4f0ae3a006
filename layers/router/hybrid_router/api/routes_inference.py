"""Inference routes: POST /v1/chat/completions, GET /v1/models[/{model}], POST /v1/route."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, StreamingResponse

from hybrid_router.api.deps import caller, services
from hybrid_router.api.errors import ApiError
from hybrid_router.api.identity import Identity
from hybrid_router.api.models import ModelCard, ModelList, RouteRequest, RouteResponse
from hybrid_router.api.openapi import errors
from hybrid_router.api.services import Services
from hybrid_router.api.streaming import ClosingStreamingResponse
from hybrid_router.backends.base import INPUT_REJECTED, BackendError
from hybrid_router.cache.policy import opt_out, skips_cache
from hybrid_router.decision import DecisionRecord, Route
from hybrid_router.http_face import chat_response, routing_block, routing_headers
from hybrid_router.openai_schema import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    completion_chunk,
    error_body,
    usage_chunk,
)
from hybrid_router.pipeline import AnswerFailed, Pipeline, Plan
from hybrid_router.ulid import new_ulid

router = APIRouter()


def _resolve_model(svc: Services, model: str) -> tuple[Any, Route | None, float | None]:
    """(router, forced route or None, threshold named in the model) for a `model` name; unknown names are 404."""
    from hybrid_router.routing import parse_router_model

    spec = parse_router_model(model)
    if spec is not None:
        return svc.router_for_kind(spec.kind), None, spec.threshold
    if model in (svc.strong_model_name(), "strong"):
        return svc.router, "strong", None
    if model in (svc.weak_model_name(), "weak") and svc.has_weak_backend:
        return svc.router, "weak", None
    raise ApiError(
        404,
        f"The model '{model}' does not exist here; GET /v1/models lists the models served.",
        code="model_not_found",
        param="model",
    )


def _decide(
    svc: Services, prompt: str, model: str, threshold: float | None = None, strong_share: float | None = None
) -> tuple[Any, Route | None, Any]:
    """(router, forced route or None, RouteDecision). Forced requests are scored too: the record keeps the score."""
    router_, forced, named_threshold = _resolve_model(svc, model)
    if threshold is None and strong_share is None:
        threshold = named_threshold
    try:
        decision = router_.decide(prompt, threshold=threshold, strong_share=strong_share)
    except ValueError as exc:  # e.g. strong_share on a router without a calibration table
        raise ApiError(422, f"Cannot route this request: {exc}", code="invalid_value") from None
    return router_, forced, decision


@dataclass
class CloudPlan:
    """The core plan, plus what the cloud tells its caller: what the router chose before a missing weak
    endpoint sent the prompt strong."""

    core: Plan
    decided_route: Route


def _plan(svc: Services, body: ChatCompletionRequest, who: Identity, decision_id: str | None = None) -> CloudPlan:
    decision_id = decision_id or new_ulid()
    router_, forced, named_threshold = _resolve_model(svc, body.model)
    experiment_fields: dict[str, Any] = {}
    running = svc.experiment_routers() if not forced and router_ is svc.router else None
    if running is not None:  # the experiment's arm decides (hybrid_router.experiments: one copy, device and cloud)
        from hybrid_router.experiments import decide

        experiment, control, candidate = running
        decision: Any = decide(
            experiment, control, candidate, body.last_user_text(), decision_id, threshold=named_threshold
        )
        router_, experiment_fields = decision.router, decision.fields
    else:
        router_, forced, decision = _decide(svc, body.last_user_text(), body.model)
    decided: Route = forced or decision.route
    route: Route = decided
    reason = "forced" if forced else "routed"
    if decided == "weak" and svc.weak_backend() is None:
        # No weak endpoint in the cloud: the strong endpoint answers, and the record says so.
        route, reason = "strong", "fallback:no_weak_endpoint"
    info = router_.info
    core = Plan(
        decision_id=decision_id,
        requested_model=body.model,
        route=route,
        reason=reason,
        score=float(decision.score),
        threshold=float(decision.threshold),
        router_id=info.router_id,
        router_version=info.version,
        router_latency_ms=float(decision.latency_ms),
        remote=True,
        tenant_id=who.tenant_id,
        device_id=who.device_id,
        experiment_fields=experiment_fields,
    )
    return CloudPlan(core, decided)


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


def _pipeline(svc: Services, linked: bool, tenant_id: str) -> Pipeline:
    """The cloud's settings of the one pipeline: no fallback to the other side, no budget, the DynamoDB recorder,
    and the tenant's answer cache when it is turned on."""
    return Pipeline(
        svc.weak_backend(),
        svc.strong_backend(),
        svc.weak_model_name(),
        svc.strong_model_name(),
        CloudRecorder(svc, linked),
        costs=svc.cost_model,
        fallback=False,
        default_max_tokens=svc.settings.default_max_tokens,
        cache=svc.answer_cache(tenant_id),
    )


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


def _routing_info(plan: CloudPlan, pipeline: Pipeline, record: DecisionRecord | None = None) -> dict[str, Any]:
    core = plan.core
    model = pipeline.strong_name if core.route == "strong" else pipeline.weak_name
    return routing_block(core, core.route, core.reason, model, record, decided_route=plan.decided_route)


def _backend_error(exc: BackendError) -> ApiError:
    """What the caller hears when the endpoint fails before the first byte (plain and streaming requests alike)."""
    if exc.cause == INPUT_REJECTED:  # the endpoint refused this input: the caller's error, not ours to retry
        return ApiError(400, str(exc), code=INPUT_REJECTED)
    status = exc.status_code if exc.status_code in (502, 503, 504) else 502
    what = "timed out" if status == 504 else "failed"
    return ApiError(status, f"The model endpoint {what}: {exc}", code=f"upstream_{exc.cause}")


def _check_input(body: ChatCompletionRequest) -> None:
    """What validation lets through but no model should see: refused before routing, so nothing is charged or logged."""
    problem = body.input_problem()
    if problem is not None:
        raise ApiError(
            413 if problem.too_large else 422,
            problem.message[0].upper() + problem.message[1:] + ".",
            code=problem.code,
            param=problem.param,
        )


def _caller_decision_id(value: str | None) -> str | None:
    if value is None:
        return None
    from hybrid_router.ulid import is_ulid

    if not is_ulid(value.strip()):
        raise ApiError(422, "x-decision-id must be a 26-character ULID.", code="invalid_value", param="x-decision-id")
    return value.strip()


@router.post(
    "/v1/chat/completions",
    response_model=ChatCompletionResponse,
    response_model_exclude_none=True,
    responses={200: {"content": {"text/event-stream": {}}}, **errors(404, 409, 422, 502, 503, 504)},
)
def chat_completions(
    body: ChatCompletionRequest,
    who: Identity = Depends(caller),
    svc: Services = Depends(services),
    x_decision_id: str | None = Header(default=None),
    cache_control: str | None = Header(default=None),
) -> Any:
    """OpenAI chat completions. `model` "router" / "router-<kind>-<threshold>" routes; the strong model's name
    forces strong. Every answer served is recorded here. A caller that keeps its own decision log (the edge
    client) sends `x-decision-id`: the answer and the record carry that id, which links the record to the
    device's own (uploaded later, merged, so nothing counts twice). The id must be new and the caller's own
    (409 `decision_id_reused` / `decision_id_conflict`)."""
    caller_id = _caller_decision_id(x_decision_id)
    _check_input(body)
    plan = _plan(svc, body, who, caller_id)
    if caller_id:
        _claim(svc, who, caller_id)
        plan.core.decision_id = caller_id
    if skips_cache(cache_control):  # a fresh answer, as the request field `"cache": false` asks
        opt_out(body)
    pipeline = _pipeline(svc, linked=bool(caller_id), tenant_id=who.tenant_id)
    if body.stream:
        return _stream(pipeline, plan, body, svc.settings.stream_limit_s)
    try:
        answer = pipeline.complete(body, plan.core)
    except AnswerFailed as exc:
        raise _backend_error(exc.last) from None
    record = answer.record
    routing = _routing_info(plan, pipeline, record)
    if not answer.stored:
        routing["unstored_record"] = record.model_dump(mode="json")
    return JSONResponse(
        chat_response(record, answer.text, answer.finish_reason, routing).model_dump(exclude_none=True),
        headers=routing_headers(routing),
    )


class StreamLimit(Exception):
    """An answer streamed for longer than STREAM_LIMIT_S (ended and recorded already)."""


def _sse(data: Any) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


def _stream(
    pipeline: Pipeline, plan: CloudPlan, body: ChatCompletionRequest, limit_s: float | None = None
) -> StreamingResponse:
    """Server-sent events. Under uvicorn (and the Lambda Web Adapter) they flow as generated; Mangum collects the
    whole body and returns it as one buffered text/event-stream response: same chunks, same [DONE], at the end.
    The first piece is fetched before the response starts, so a dead endpoint is still a 502/504 status.
    `limit_s` (STREAM_LIMIT_S): an answer still streaming after that long is ended here, with an error event, and
    recorded with what was sent (error "stream_limit"), before the function's own timeout could lose the record."""
    started = time.monotonic()
    try:
        answer = pipeline.stream(body, plan.core)
    except AnswerFailed as exc:
        raise _backend_error(exc.last) from None
    completion_id, created = f"chatcmpl-{plan.core.decision_id}", int(time.time())
    model = answer.model

    def events() -> Iterator[str]:
        try:
            chunk = completion_chunk(completion_id, model, {"role": "assistant", "content": ""}, created=created)
            chunk["routing"] = _routing_info(plan, pipeline)
            if answer.cached is not None:  # served again from the tenant's answer cache
                chunk["routing"].update(reason=answer.reason, cached_from=answer.cached.decision_id, cost_usd=0.0)
            yield _sse(chunk)
            try:
                for piece in answer:
                    yield _sse(completion_chunk(completion_id, model, {"content": piece}, created=created))
                    if limit_s is not None and time.monotonic() - started > limit_s and answer.record is None:
                        answer.close("stream_limit")
                        raise StreamLimit(limit_s)
            except StreamLimit:
                yield _sse(
                    error_body(
                        f"The answer was still streaming after {limit_s:g} s, the longest a stream may last here; "
                        "it ends with what was sent (recorded as such). Ask for fewer max_tokens.",
                        "timeout_error",
                        code="stream_limit",
                    )
                )
            except BackendError as exc:  # recorded by the answer, with the pieces delivered
                yield _sse(
                    error_body(
                        f"The model endpoint broke off the answer: {exc}",
                        "upstream_error",
                        code=f"upstream_{exc.cause}",
                    )
                )
            else:
                last = completion_chunk(completion_id, model, {}, finish_reason=answer.finish_reason, created=created)
                if answer.record is not None:  # as the device's last chunk: the block with what the answer cost
                    last["routing"] = _routing_info(plan, pipeline, answer.record)
                yield _sse(last)
                if body.include_usage() and answer.record is not None:
                    yield _sse(usage_chunk(completion_id, model, answer.record, created=created))
            yield "data: [DONE]\n\n"
        finally:  # the client went away mid-answer: stop reading the endpoint, record what was sent
            if answer.record is None:
                answer.close("client_disconnected")

    return ClosingStreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-decision-id": plan.core.decision_id},
    )


@router.get("/v1/models", response_model=ModelList, responses=errors(503))
def list_models(_: Identity = Depends(caller), svc: Services = Depends(services)) -> ModelList:
    info = svc.router.info
    cards = [
        ModelCard(id="router", description=f"{info.kind} router at its default threshold {info.default_threshold:g}"),
        ModelCard(id=f"router-{info.kind}-{info.default_threshold:g}", description="the same router, named"),
    ]
    if svc.settings.strong_endpoint_name:
        cards.append(ModelCard(id=svc.strong_model_name(), description="strong model (SageMaker endpoint)"))
        cards.append(ModelCard(id="strong", description=f"alias of {svc.strong_model_name()}"))
    if svc.has_weak_backend:
        cards.append(ModelCard(id=svc.weak_model_name(), description="weak model (SageMaker endpoint)"))
    return ModelList(data=cards)


@router.get("/v1/models/{model:path}", response_model=ModelCard, responses=errors(404, 503))
def retrieve_model(model: str, identity: Identity = Depends(caller), svc: Services = Depends(services)) -> ModelCard:
    """One model by name: a listed one, or any name a chat request accepts (e.g. `router-mf-0.4`); else 404."""
    listed = {card.id: card for card in list_models(identity, svc).data}
    if model in listed:
        return listed[model]
    router_, _, threshold = _resolve_model(svc, model)
    return ModelCard(
        id=model,
        description=f"{router_.info.kind} router at threshold {threshold:g}"
        if threshold is not None
        else f"{router_.info.kind} router at its default threshold",
    )


@router.post("/v1/route", response_model=RouteResponse, responses=errors(404, 422, 503))
def route(body: RouteRequest, _: Identity = Depends(caller), svc: Services = Depends(services)) -> RouteResponse:
    """Decision only. Nothing is stored: the caller logs its decision under the returned decision_id."""
    router_, forced, decision = _decide(svc, body.text(), body.model, body.threshold, body.strong_share)
    info = router_.info
    chosen: Route = forced or decision.route
    svc.telemetry.route_only(chosen, float(decision.latency_ms))
    return RouteResponse(
        decision_id=new_ulid(),
        score=float(decision.score),
        threshold=float(decision.threshold),
        route=chosen,
        model=svc.strong_model_name() if chosen == "strong" else svc.weak_model_name(),
        router_id=info.router_id,
        router_kind=info.kind,
        router_version=info.version,
        strong_model=svc.strong_model_name(),
        weak_model=svc.weak_model_name(),
        latency_ms=float(decision.latency_ms),
    )
