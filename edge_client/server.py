"""The device's OpenAI-compatible HTTP server: POST /v1/chat/completions (plain and SSE), GET /v1/models[/{model}], GET /health,
and POST /v1/feedback (a rating of one answer, as the cloud API takes it, kept in the device's decision log).

Each answer carries its decision: a `routing` field (and, for streams, on the last chunk) plus
x-hybrid-router-* response headers. Errors use OpenAI's error body.

Only what the user meant is served: the Host must be this machine's (no DNS rebinding), a browser Origin must be
this server's own or an allowed one, bodies must be application/json (no CORS "simple request" reaches a model), and
with `server_token` set every route but GET /health needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

import hybrid_router
from edge_client.config import ConfigError, Settings
from edge_client.routing_source import RoutingError
from edge_client.service import EdgeService, Plan, StreamingAnswer, UnknownModelError
from hybrid_router.api.errors import error_response, validation_error_response
from hybrid_router.api.limits import BodyLimits
from hybrid_router.api.openapi import document, errors
from hybrid_router.backends.base import BackendError
from hybrid_router.cache.policy import opt_out, skips_cache
from hybrid_router.dashboard import DASHBOARD_MAX_DAYS
from hybrid_router.decision import DecisionNotFound
from hybrid_router.feedback import FeedbackRequest, FeedbackResponse
from hybrid_router.http_face import chat_response, routing_block, routing_headers
from hybrid_router.openai_schema import (
    MAX_PROMPT_CHARS,
    ChatCompletionRequest,
    ChatCompletionResponse,
    completion_chunk,
    error_body,
    usage_chunk,
)
from hybrid_router.pipeline import ClientGone
from hybrid_router.stores.sqlite_log import DecisionLogError

# Room for the JSON around a prompt of MAX_PROMPT_CHARS characters.
MAX_BODY_BYTES = MAX_PROMPT_CHARS + 64 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
log = logging.getLogger("edge_client.server")


def _error(
    status: int,
    message: str,
    error_type: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(message, error_type, code=code, param=param), status_code=status)


def _backend_error(exc: BackendError) -> JSONResponse:
    status = exc.status_code if exc.status_code >= 400 else 502
    kind = "invalid_request_error" if status < 500 else "api_error"  # 4xx: the request, e.g. too long
    response = _error(status, str(exc), kind, code=exc.cause)
    if exc.retry_after_s is not None:  # a busy local model: the same request may pass in a moment
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after_s)))
    return response


def _hostname(host: str) -> str:
    """The name in a Host header or address, without its port: example.com, 127.0.0.1, [::1]."""
    host = host.strip().lower()
    if host.count(":") > 1 and not host.startswith("["):
        return f"[{host}]"
    name = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return name.rstrip(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(_hostname(host).strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    ip = _ip(host)
    return ip.is_loopback if ip is not None else _hostname(host) == "localhost"


def check_bind(host: str, settings: Settings) -> None:
    """Refuses to serve beyond this machine without a token: anyone on the network could spend the user's money."""
    if not is_loopback(host) and not settings.server_token:
        raise ConfigError(
            f"serving on the non-loopback host {host} needs a token: set server_token "
            "(HYBRID_ROUTER_SERVER_TOKEN), or serve on 127.0.0.1"
        )


class RequestGuard:
    """Refuses, before a body is read, what a web page could send on the user's behalf: a Host that is not this
    machine (DNS rebinding), an Origin that is neither this server's nor allowed, a call without the token (when one
    is set), and a POST body that is not application/json (a CORS simple request, sent without a preflight).

    This machine is localhost, 127.0.0.1, [::1], the address the connection came in on, the bound `host` (unless
    it is 0.0.0.0 or ::) and `allowed_hosts`, on any port; the server's own origin is http:// one of those
    loopback names or that address, on its port."""

    def __init__(self, app: ASGIApp, settings: Settings, host: str | None) -> None:
        self.app = app
        self.hosts = LOOPBACK_HOSTS | {_hostname(name) for name in settings.allowed_hosts}
        if host is not None and not getattr(_ip(host), "is_unspecified", False):
            self.hosts |= {_hostname(host)}
        self.origins = frozenset(settings.allowed_origins)
        self.token = settings.server_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self._refusal(scope) if scope["type"] == "http" else None
        if refusal is None:
            await self.app(scope, receive, send)
        else:
            await refusal(scope, receive, send)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        address, port = scope.get("server") or ("127.0.0.1", 80)
        own = LOOPBACK_HOSTS | {_hostname(address)}
        host = headers.get("host", "")
        if _hostname(host) not in self.hosts | own:
            return _error(
                403, f"Host {host!r} is not this machine; add it to allowed_hosts to serve it", code="host_not_allowed"
            )
        origin = headers.get("origin")
        own_origins = {f"http://{name}:{port}" for name in own} | (
            {f"http://{name}" for name in own} if port == 80 else set()
        )
        if origin is not None and origin.lower().rstrip("/") not in self.origins | own_origins:
            return _error(
                403,
                f"Origin {origin!r} is not allowed; add it to allowed_origins to serve it",
                code="origin_not_allowed",
            )
        method = scope["method"]
        preflight = method == "OPTIONS" and "access-control-request-method" in headers
        health = method in ("GET", "HEAD") and scope["path"] == "/health"
        if self.token and not (preflight or health) and not self._authorized(headers.get("authorization", "")):
            response = _error(
                401, "send the server token as 'Authorization: Bearer <server_token>'", code="invalid_token"
            )
            response.headers["www-authenticate"] = "Bearer"
            return response
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if method == "POST" and content_type != "application/json":
            return _error(
                415,
                f"the body must be JSON sent as Content-Type: application/json, not {content_type!r}",
                code="unsupported_media_type",
            )
        return None

    def _authorized(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        return (
            self.token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(token.strip().encode(), self.token.encode())
        )


def _parse(body: bytes) -> ChatCompletionRequest | JSONResponse:
    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        return _error(400, "request body is not valid JSON: it must be UTF-8 encoded", code="invalid_json")
    except json.JSONDecodeError as exc:
        return _error(400, f"request body is not valid JSON: {exc}", code="invalid_json")
    if not isinstance(data, dict):
        return _error(400, "request body must be a JSON object", code="invalid_json")
    if not data.get("messages"):
        return _error(
            400, "'messages' must be a non-empty list of chat messages", param="messages", code="invalid_messages"
        )
    try:
        request = ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        named = (first.get("ctx") or {}).get("param")  # TextOnly names the field in its message
        param = named or ".".join(str(p) for p in first["loc"]) or None
        detail = first["msg"] if named else f"{param}: {first['msg']}"
        return _error(400, f"invalid request: {detail}", param=param, code="invalid_value")
    problem = request.input_problem()
    if problem is not None:
        return _error(413 if problem.too_large else 400, problem.message, param=problem.param, code=problem.code)
    return request


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


class _Pump:
    """Runs a StreamingAnswer to the end in one worker thread, handing pieces to the event loop.

    The generating thread never waits for the network (no thread hop per token), which keeps tokens/s at
    the model's own speed; `stop()` ends generation early when the client goes away.
    """

    _DONE = object()

    def __init__(self, answer: StreamingAnswer) -> None:
        self.answer = answer
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        self.future = self.loop.run_in_executor(None, self._produce)

    def _produce(self) -> None:
        pieces = iter(self.answer)
        put = self.queue.put_nowait
        try:
            for piece in pieces:
                if self.stopped.is_set():
                    break
                self.loop.call_soon_threadsafe(put, piece)
            self.loop.call_soon_threadsafe(put, self._DONE)
        except BaseException as exc:  # handed to the event loop, which reports it in the stream
            self.loop.call_soon_threadsafe(put, exc)
        finally:
            pieces.close()  # type: ignore[attr-defined]
            self.answer.close()

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopped.set()


async def _sse_body(answer: StreamingAnswer, completion_id: str, include_usage: bool) -> AsyncIterator[bytes]:
    model = answer.model
    pump = _Pump(answer)
    try:
        yield _sse(completion_chunk(completion_id, model, {"role": "assistant", "content": ""}))
        try:
            async for piece in pump:
                yield _sse(completion_chunk(completion_id, model, {"content": piece}))
        except BackendError as exc:
            yield _sse(error_body(f"the answer broke off: {exc}", "api_error", code=exc.cause))
            yield _sse("[DONE]")
            return
        except DecisionLogError as exc:  # the text already went out; say it is not recorded, no traceback
            yield _sse(
                error_body(
                    f"the decision log cannot be written, so this answer is not recorded: {exc}",
                    "api_error",
                    code="decision_log_unwritable",
                )
            )
            yield _sse("[DONE]")
            return
        await pump.future  # the record is written once the worker has finished
        record = answer.record
        last = completion_chunk(completion_id, model, {}, finish_reason=answer.finish_reason)
        if record is not None:
            last["routing"] = routing_block(answer.plan, record.route, record.reason, record.model_used, record)
        yield _sse(last)
        if include_usage and record is not None:
            yield _sse(usage_chunk(completion_id, model, record))
        yield _sse("[DONE]")
    finally:
        pump.stop()  # a client that went away ends generation at the next piece


async def _complete_unless_gone(http_request: Request, service: EdgeService, request: Any, plan: Plan) -> Any:
    """A plain answer whose generation stops soon after the client hangs up (ClientGone), instead of running on
    to max_tokens and holding the local model from everyone behind it."""
    gone = threading.Event()

    async def watch() -> None:  # the body is read: the next ASGI message is the client hanging up
        while (await http_request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        return await run_in_threadpool(service.complete, request, plan, gone.is_set)
    finally:
        gone.set()
        watcher.cancel()


router = APIRouter()  # the device server's routes; create_app mounts them with the device's guard and errors


def _service(request: Request) -> EdgeService:
    return request.app.state.service


@router.get("/health")
def health(service: EdgeService = Depends(_service)) -> dict[str, Any]:
    """`status` is "degraded" while the router asked for cannot load and another routes (`router` says which)."""
    weak = service.weak
    source = service.route_source
    status = getattr(source, "status", None)  # which router routes, and why when it is not the one asked for
    return {
        "status": "degraded" if status is not None and status.degraded else "ok",
        "weak_model": service.weak_name,
        "weak_loaded": bool(getattr(weak, "loaded", True)),
        "strong_model": service.strong_name,
        "strong_configured": service.strong is not None,
        "router_kind": source.kind if source else None,
        "router": status.as_dict() if status is not None else None,
    }


@router.get("/v1/models")
async def models(service: EdgeService = Depends(_service)) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "hybrid-router"} for name in service.model_names()
        ],
    }


@router.get("/v1/models/{model:path}", responses=errors(404, 503))
async def model(model: str, service: EdgeService = Depends(_service)) -> Any:
    try:
        served = await run_in_threadpool(service.serves, model)
    except RoutingError as exc:  # an installed kind whose router file cannot be loaded
        return _error(503, str(exc), "api_error", code="router_unavailable")
    if not served:
        return _error(
            404,
            f"The model '{model}' does not exist here; GET /v1/models lists the models served.",
            code="model_not_found",
            param="model",
        )
    return {"id": model, "object": "model", "created": 0, "owned_by": "hybrid-router"}


@router.post(
    "/v1/chat/completions",
    responses={
        200: {"model": ChatCompletionResponse, "content": {"text/event-stream": {}}},
        **errors(404, 502, 503, 504, 507),
    },
)
async def chat_completions(http_request: Request, service: EdgeService = Depends(_service)) -> Any:
    parsed = _parse(await http_request.body())
    if isinstance(parsed, JSONResponse):
        return parsed
    request = parsed
    if skips_cache(http_request.headers.get("cache-control")):  # a fresh answer, as the request field asks
        opt_out(request)
    try:
        plan = await run_in_threadpool(service.plan, request, http_request.headers.get("x-conversation-id"))
    except UnknownModelError as exc:
        return _error(404, str(exc), code="model_not_found", param="model")
    except RoutingError as exc:
        return _error(503, str(exc), "api_error", code="router_unavailable")
    except BackendError as exc:  # refused before any model runs (a spend cap on a request naming the model)
        return _backend_error(exc)
    completion_id = f"chatcmpl-{plan.decision_id}"
    try:
        if request.stream:
            answer = await run_in_threadpool(service.stream, request, plan)
            routing = routing_block(plan, answer.route, answer.reason, answer.model)
            include_usage = request.include_usage()
            return StreamingResponse(
                _sse_body(answer, completion_id, include_usage),
                media_type="text/event-stream",
                headers=routing_headers(routing),
            )
        result = await _complete_unless_gone(http_request, service, request, plan)
    except ClientGone as exc:  # nobody reads this; generation stopped and the record says so
        return _error(499, str(exc), code="client_disconnected")
    except BackendError as exc:
        return _backend_error(exc)
    except DecisionLogError as exc:
        return _error(
            507,
            f"the decision log cannot be written, so the answer is withheld: {exc}",
            "api_error",
            code="decision_log_unwritable",
        )
    record = result.record
    routing = routing_block(plan, record.route, record.reason, record.model_used, record)
    response = chat_response(record, result.text, result.finish_reason, routing)
    return JSONResponse(response.model_dump(exclude_none=True), headers=routing_headers(routing))


@router.get("/dashboard", include_in_schema=False)
def dashboard(
    request: Request,
    days: int = Query(default=30, ge=1, le=DASHBOARD_MAX_DAYS),
    service: EdgeService = Depends(_service),
) -> Any:
    """The device's dashboard (hybrid_router.dashboard over the decision log): to this machine's callers only."""
    from fastapi.responses import HTMLResponse

    from hybrid_router.dashboard import page

    if request.client is None or not is_loopback(request.client.host):
        return _error(403, "the dashboard is served to this machine only", code="not_loopback")
    since = (datetime.now(UTC) - timedelta(days=days - 1)).date().isoformat()
    records = service.log.records(since=since)
    title = f"hybrid-router on this device ({service.settings.device_id}), last {days} days"
    return HTMLResponse(page(records, service.log.ratings(), title))


@router.get("/dashboard/chart.umd.min.js", include_in_schema=False)
def dashboard_chart_js(request: Request) -> Any:
    from hybrid_router.dashboard import chart_js

    if request.client is None or not is_loopback(request.client.host):
        return _error(403, "the dashboard is served to this machine only", code="not_loopback")
    return Response(chart_js(), media_type="text/javascript")


@router.post("/v1/feedback", response_model=FeedbackResponse, responses=errors(404, 422, 507))
def feedback(body: FeedbackRequest, service: EdgeService = Depends(_service)) -> Any:
    """The cloud API's POST /v1/feedback, kept in the decision log until `sync` uploads it."""
    try:
        stored = service.log.rate(body)
    except DecisionNotFound:
        return error_response(
            404, f"No decision {body.decision_id} for this device.", code="decision_not_found", param="decision_id"
        )
    except DecisionLogError as exc:
        return _error(
            507,
            f"the decision log cannot be written, so the rating is not saved: {exc}",
            "api_error",
            code="decision_log_unwritable",
        )
    return FeedbackResponse(**stored.model_dump(include=set(FeedbackResponse.model_fields)))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = "not_found" if exc.status_code == 404 else None
    response = _error(exc.status_code, str(exc.detail), code=code)
    response.headers.update(exc.headers or {})  # e.g. a 405's Allow
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # the details go to the log, not out
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _error(
        500,
        "internal error; the request was not completed (the server's log has the details)",
        "server_error",
        code="internal_error",
    )


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Bodies FastAPI parses (feedback): the cloud API's errors."""
    return validation_error_response(exc)


def create_app(service: EdgeService, host: str | None = None) -> FastAPI:
    """The server for `service`; `host` is the address it is bound to (then allowed as a Host), if known."""
    settings = service.settings
    if host is not None:
        check_bind(host, settings)
    app = FastAPI(title="hybrid-router edge", version=hybrid_router.__version__, docs_url=None, redoc_url=None)
    app.state.service = service

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.include_router(router)
    app.add_middleware(BodyLimits, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["authorization", "content-type", "x-conversation-id"],
        expose_headers=["x-hybrid-router-decision-id", "x-hybrid-router-route"],
    )
    app.add_middleware(RequestGuard, settings=settings, host=host)
    token = {"Bearer": {"type": "http", "scheme": "bearer", "description": "the server_token"}}
    document(
        app,
        schemes=token if settings.server_token else {},
        public={"/health"},
        protected=(401,),
        every=(403,),
        with_body=(400, 413, 415),
        bodies={("POST", "/v1/chat/completions"): ChatCompletionRequest},
    )
    return app
