"""The device's OpenAI-compatible HTTP server: the chat routes the cloud API mounts too (hybrid_router.chat_routes:
POST /v1/chat/completions, GET /v1/models[/{model}]) over the device's door, plus GET /health, the dashboard and
POST /v1/feedback (a rating of one answer, as the cloud API takes it, kept in the device's decision log). Errors
are the cloud's table (hybrid_router.api.errors): the same failure, the same status and code on both servers.

Only what the user meant is served: the Host must be this machine's (no DNS rebinding), a browser Origin must be
this server's own or an allowed one, bodies must be application/json (no CORS "simple request" reaches a model), and
with `server_token` set every route but GET /health needs `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

import hybrid_router
from edge_client.config import ConfigError, Settings
from edge_client.service import Answer, EdgeService, Plan, StreamingAnswer
from hybrid_router.api.errors import error_response, install_error_handlers
from hybrid_router.api.limits import BodyLimits
from hybrid_router.api.openapi import document, errors
from hybrid_router.chat_routes import ChatHeaders, chat_router
from hybrid_router.dashboard import DASHBOARD_MAX_DAYS
from hybrid_router.decision import DecisionNotFound
from hybrid_router.feedback import FeedbackRequest, FeedbackResponse
from hybrid_router.openai_schema import MAX_PROMPT_CHARS, ChatCompletionRequest
from hybrid_router.planning import ModelCatalog
from hybrid_router.stores.sqlite_log import DecisionLogError

# Room for the JSON around a prompt of MAX_PROMPT_CHARS characters.
MAX_BODY_BYTES = MAX_PROMPT_CHARS + 64 * 1024
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
log = logging.getLogger("edge_client.server")


def _error(status: int, message: str, code: str) -> JSONResponse:
    return error_response(status, message, code=code)


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


class DeviceDoor:
    """The device's side of a chat request (hybrid_router.chat_routes): its service's planner and pipeline."""

    stream_limit_s = None  # a local answer may take as long as it takes

    def __init__(self, service: EdgeService):
        self.service = service

    @property
    def catalog(self) -> ModelCatalog:
        return self.service.catalog

    def plan(self, request: ChatCompletionRequest, headers: ChatHeaders) -> Plan:
        return self.service.plan(request, headers.conversation_id)

    def complete(self, request: ChatCompletionRequest, plan: Plan, cancelled: Callable[[], bool]) -> Answer:
        return self.service.complete(request, plan, cancelled)

    def stream(self, request: ChatCompletionRequest, plan: Plan) -> StreamingAnswer:
        return self.service.stream(request, plan)


async def _service(request: Request) -> EdgeService:
    return request.app.state.service


async def device_door(request: Request) -> DeviceDoor:
    return DeviceDoor(request.app.state.service)


chat_routes = chat_router(device_door, chat_errors=(429, 499, 507))  # the routes the cloud API mounts too
router = APIRouter()  # the device's own routes


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
            507, f"The decision log cannot be written, so the rating is not saved: {exc}", "decision_log_unwritable"
        )
    return FeedbackResponse(**stored.model_dump(include=set(FeedbackResponse.model_fields)))


def create_app(service: EdgeService, host: str | None = None) -> FastAPI:
    """The server for `service`; `host` is the address it is bound to (then allowed as a Host), if known."""
    settings = service.settings
    if host is not None:
        check_bind(host, settings)
    app = FastAPI(title="hybrid-router edge", version=hybrid_router.__version__, docs_url=None, redoc_url=None)
    app.state.service = service

    install_error_handlers(app)
    app.include_router(chat_routes)
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
    )
    return app
