"""A local stand-in for the SageMaker runtime API, speaking its wire protocol so boto3 runs unchanged.

  POST /endpoints/{name}/invocations                  -> InvokeEndpoint
  POST /endpoints/{name}/invocations-response-stream  -> InvokeEndpointWithResponseStream (AWS event-stream framing)

Each endpoint name maps to a model container's base URL (the BYOC `/invocations` contract, local_stack.container),
or, for an endpoint with inference components, to {component name: base URL}: such an endpoint refuses a call
without the X-Amzn-SageMaker-Inference-Component header (boto3's InferenceComponentName), as SageMaker does.
Errors use AWS's JSON error shape with `x-amzn-ErrorType`, so botocore raises the same exceptions as against AWS:
ValidationError (400, unknown endpoint), ModelError (424, the container failed), ServiceUnavailable (503),
InternalFailure (500); in a stream, a ModelStreamError exception event.

Fault injection (for fallback tests; the stand-in only): a FaultPlan set with POST /_stand_in/faults, cleared
with DELETE, or given at start in env LOCAL_SAGEMAKER_FAULTS (JSON).

A caller that closes a response stream early closes the stand-in's connection to the container as well, so the
container stops generating and frees the model for the next request.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import anyio
import httpx
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from hybrid_router.api.streaming import ClosingStreamingResponse
from local_stack.eventstream import CONTENT_TYPE as EVENTSTREAM_CONTENT_TYPE
from local_stack.eventstream import exception_event, payload_part

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
VARIANT = "AllTraffic"
FAULTS_ENV = "LOCAL_SAGEMAKER_FAULTS"

_STREAM_ONLY_MODES = {"cut", "stream_error", "stall"}
FaultMode = Literal["none", "latency", "model_error", "service_error", "cut", "stream_error", "stall"]


class FaultPlan(BaseModel):
    """What goes wrong on the next requests.

    latency: wait latency_s before answering. model_error: the container "answers" `status` (-> ModelError 424).
    service_error: the runtime itself fails with `status` (500 InternalFailure, 503 ServiceUnavailable).
    cut: drop the connection after `after_parts` stream parts. stream_error: send a ModelStreamError event after
    `after_parts` parts. stall: pause latency_s after `after_parts` parts.
    """

    mode: FaultMode = "none"
    latency_s: float = Field(default=0.0, ge=0.0, le=600.0)
    status: int = Field(default=500, ge=400, le=599)
    after_parts: int = Field(default=1, ge=0)
    remaining: int | None = Field(default=None, ge=1, description="requests it applies to; None = until cleared")
    endpoint: str | None = None
    operation: Literal["any", "invoke", "stream"] = "any"


class _Faults:
    def __init__(self, plan: FaultPlan | None = None):
        self.plan = plan or FaultPlan()

    def take(self, endpoint: str, operation: str) -> FaultPlan | None:
        plan = self.plan
        if plan.mode == "none" or (plan.endpoint and plan.endpoint != endpoint):
            return None
        if plan.operation != "any" and plan.operation != operation:
            return None
        if operation == "invoke" and plan.mode in _STREAM_ONLY_MODES:
            return None
        if plan.remaining is not None:
            left = plan.remaining - 1
            self.plan = plan.model_copy(update={"remaining": left}) if left > 0 else FaultPlan()
        return plan


class _CutConnection(Exception):
    """Raised inside a streaming body to make the server drop the connection mid-response (fault injection)."""


def aws_error(status: int, error_type: str, message: str, **extra: object) -> JSONResponse:
    body: dict[str, object] = {"message": message, **extra}
    return JSONResponse(
        body, status_code=status, headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": os.urandom(16).hex()}
    )


def _model_error(status: int, message: str) -> JSONResponse:
    kind = "client" if status < 500 else "server"
    return aws_error(
        424,
        "ModelError",
        f'Received {kind} error ({status}) from primary with message "{message}". See '
        f"https://{REGION}.console.aws.amazon.com/cloudwatch/home for more information.",
        Message=f"Received {kind} error ({status}) from primary",
        OriginalStatusCode=status,
        OriginalMessage=message,
        ErrorCode=f"{kind.upper()}_ERROR_FROM_MODEL",
        LogStreamArn=f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:/aws/sagemaker/Endpoints/local",
    )


def _service_error(status: int) -> JSONResponse:
    if status == 503:
        return aws_error(503, "ServiceUnavailable", "The service is unavailable. Try your call again.")
    return aws_error(status, "InternalFailure", "An internal failure occurred (injected by the local stand-in).")


def _container_message(raw: bytes) -> str:
    """The container's error body as it came, as SageMaker passes it on (OriginalMessage): TGI's is JSON,
    {"error": "Input validation error: ...", "error_type": "validation"}."""
    return raw.decode("utf-8", errors="replace").strip()[:4000]


_COMPONENT_HEADER = "x-amzn-sagemaker-inference-component"
_COMPONENT_REQUIRED = (
    "Inference Component Name header is required for endpoints to which you plan to deploy inference components. "
    "Please include Inference Component Name header or consider using SageMaker models."
)

Endpoints = dict[str, str | dict[str, str]]  # endpoint name -> container base URL, or component name -> base URL


@dataclass
class _Runtime:
    """What the routes share: where each endpoint's containers are, the fault plan, the client to the containers."""

    endpoints: Endpoints
    faults: _Faults
    http: httpx.AsyncClient


router = APIRouter()  # the runtime's routes; create_runtime_app mounts them over one _Runtime


async def _runtime(request: Request) -> _Runtime:
    return request.app.state.runtime


def _container_url(endpoints: Endpoints, name: str, request: Request) -> str | JSONResponse:
    """The container that serves this call, or SageMaker's refusal."""
    target = endpoints.get(name)
    component = request.headers.get(_COMPONENT_HEADER)
    if target is None:
        return aws_error(400, "ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found.")
    if isinstance(target, str):
        if component:
            return aws_error(
                400, "ValidationError", f"Inference Component {component} is not deployed on endpoint {name}."
            )
        return target
    if not component:
        return aws_error(400, "ValidationError", _COMPONENT_REQUIRED)
    if component not in target:
        return aws_error(400, "ValidationError", f"Inference Component {component} not found.")
    return target[component]


async def _injected_failure(plan: FaultPlan | None) -> Response | None:
    """Applies the part of a fault plan that comes before the container is called: a delay, or a failed answer."""
    if plan is None:
        return None
    if plan.mode == "latency":
        await asyncio.sleep(plan.latency_s)
    elif plan.mode == "model_error":
        return _model_error(plan.status, "injected container failure")
    elif plan.mode == "service_error":
        return _service_error(plan.status)
    return None


def _forward_headers(request: Request, accept_header: str) -> dict[str, str]:
    """The headers the container gets: the content type, the caller's accept (from `accept_header`), the custom
    attributes."""
    headers = {"content-type": request.headers.get("content-type", "application/json")}
    if request.headers.get(accept_header):
        headers["accept"] = request.headers[accept_header]
    custom = request.headers.get("x-amzn-sagemaker-custom-attributes")
    if custom:
        headers["x-amzn-sagemaker-custom-attributes"] = custom
    return headers


@router.post("/endpoints/{name}/invocations")
async def invoke_endpoint(name: str, request: Request, runtime: _Runtime = Depends(_runtime)) -> Response:
    base = _container_url(runtime.endpoints, name, request)
    if not isinstance(base, str):
        return base
    body = await request.body()
    failed = await _injected_failure(runtime.faults.take(name, "invoke"))
    if failed is not None:
        return failed
    try:
        answer = await runtime.http.post(
            f"{base}/invocations", content=body, headers=_forward_headers(request, "accept")
        )
    except httpx.HTTPError as exc:
        return _model_error(502, f"container unreachable: {type(exc).__name__}")
    if answer.status_code >= 400:
        return _model_error(answer.status_code, _container_message(answer.content))
    headers = {"x-Amzn-Invoked-Production-Variant": VARIANT}
    custom = answer.headers.get("x-amzn-sagemaker-custom-attributes")
    if custom:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
    return Response(answer.content, media_type=answer.headers.get("content-type", "application/json"), headers=headers)


async def _payload_events(answer: httpx.Response, plan: FaultPlan | None) -> AsyncIterator[bytes]:
    """The container's streamed answer as event-stream PayloadParts, with the plan's cut, error or stall."""
    parts = 0
    stalled = False
    try:
        async for chunk in answer.aiter_bytes():
            if plan is not None and parts >= plan.after_parts:
                if plan.mode == "cut":
                    raise _CutConnection("connection cut by fault injection")
                if plan.mode == "stream_error":
                    yield exception_event(
                        "ModelStreamError",
                        "An error occurred while streaming the response body (injected by the local stand-in).",
                        "ModelStreamError",
                    )
                    return
                if plan.mode == "stall" and not stalled:
                    stalled = True
                    await asyncio.sleep(plan.latency_s)
            yield payload_part(chunk)
            parts += 1
    except httpx.HTTPError:
        yield exception_event(
            "ModelStreamError", "The model container's response stream broke off.", "ModelStreamError"
        )
    finally:
        # The caller went away (or the stream ended): close the container connection too, at once, so the
        # container stops generating. Shielded, as a disconnect arrives here as a cancellation.
        with anyio.CancelScope(shield=True):
            await answer.aclose()


@router.post("/endpoints/{name}/invocations-response-stream")
async def invoke_endpoint_with_response_stream(
    name: str, request: Request, runtime: _Runtime = Depends(_runtime)
) -> Response:
    base = _container_url(runtime.endpoints, name, request)
    if not isinstance(base, str):
        return base
    body = await request.body()
    plan = runtime.faults.take(name, "stream")
    failed = await _injected_failure(plan)
    if failed is not None:
        return failed
    outgoing = runtime.http.build_request(
        "POST", f"{base}/invocations", content=body, headers=_forward_headers(request, "x-amzn-sagemaker-accept")
    )
    try:
        answer = await runtime.http.send(outgoing, stream=True)
    except httpx.HTTPError as exc:
        return _model_error(502, f"container unreachable: {type(exc).__name__}")
    if answer.status_code >= 400:
        raw = await answer.aread()
        await answer.aclose()
        return _model_error(answer.status_code, _container_message(raw))
    headers = {
        "x-Amzn-Invoked-Production-Variant": VARIANT,
        "X-Amzn-SageMaker-Content-Type": answer.headers.get("content-type", "application/json"),
    }
    return ClosingStreamingResponse(_payload_events(answer, plan), media_type=EVENTSTREAM_CONTENT_TYPE, headers=headers)


@router.get("/_stand_in/faults")
def get_faults(runtime: _Runtime = Depends(_runtime)) -> dict:
    return runtime.faults.plan.model_dump()


@router.post("/_stand_in/faults")
def set_faults(plan: FaultPlan, runtime: _Runtime = Depends(_runtime)) -> dict:
    runtime.faults.plan = plan
    return plan.model_dump()


@router.delete("/_stand_in/faults")
def clear_faults(runtime: _Runtime = Depends(_runtime)) -> dict:
    runtime.faults.plan = FaultPlan()
    return runtime.faults.plan.model_dump()


@router.get("/_stand_in/health")
def health(runtime: _Runtime = Depends(_runtime)) -> dict:
    return {"status": "ok", "endpoints": sorted(runtime.endpoints)}


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.runtime.http.aclose()


def create_runtime_app(
    endpoints: Mapping[str, str | Mapping[str, str]],
    faults: FaultPlan | None = None,
    container_timeout_s: float = 300.0,
) -> FastAPI:
    """endpoints: endpoint name -> container base URL (e.g. {"strong": "http://127.0.0.1:8081"}), or -> {inference
    component name -> container base URL} for an endpoint with inference components."""
    if faults is None and os.environ.get(FAULTS_ENV):
        faults = FaultPlan.model_validate_json(os.environ[FAULTS_ENV])
    runtime = _Runtime(
        endpoints={
            name: target.rstrip("/") if isinstance(target, str) else {c: u.rstrip("/") for c, u in target.items()}
            for name, target in endpoints.items()
        },
        faults=_Faults(faults),
        http=httpx.AsyncClient(timeout=httpx.Timeout(container_timeout_s, connect=5.0)),
    )
    app = FastAPI(title="local SageMaker runtime stand-in", docs_url=None, redoc_url=None, lifespan=_lifespan)
    app.state.runtime = runtime
    app.state.faults = runtime.faults  # the fault plan, for code holding the app
    app.include_router(router)
    return app
