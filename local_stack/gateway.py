"""API Gateway (REST) in front of the cloud API, as template.yaml configures it: the local stack's front door.

What it does, as API Gateway does it:
  - API keys: every route but /health needs an `x-api-key` the gateway knows (else 401 with the template's
    INVALID_API_KEY body); the app behind it learns the caller from the key's *id* in the request context.
  - The request context reaches the app as the Lambda Web Adapter passes it: JSON in `x-amzn-request-context`,
    written over any such header the client sent (the app runs with identity_source request_context_header).
  - Buffered routes (every route but chat): the whole response is read before any of it is sent, and an answer
    not complete within the integration timeout (29 s) is cut: 504 with the template's INTEGRATION_TIMEOUT body.
  - Streamed routes (POST /v1/chat/completions, ResponseTransferMode STREAM): bytes go to the client as the app
    writes them, for up to 15 minutes, and a stream idle for 5 minutes (a regional endpoint's limit) is closed.

A client that goes away, or a cut, closes the connection to the app, which records what it served by then.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybrid_router.api.streaming import ClosingStreamingResponse

INTEGRATION_TIMEOUT_S = 29.0  # API Gateway REST's integration timeout for a buffered integration
STREAM_TIMEOUT_S = 900.0  # a streamed integration's longest response
STREAM_IDLE_TIMEOUT_S = 300.0  # a streamed response with no bytes for this long is closed (regional endpoint)
STREAMED_ROUTES = frozenset({("POST", "/v1/chat/completions")})
PUBLIC_PATHS = frozenset({"/health"})

# template.yaml's GatewayResponses bodies (tests/functional/test_local_stack_gateway.py checks they are the same).
INTEGRATION_TIMEOUT_BODY = {
    "error": {
        "message": "The request took longer than API Gateway allows (29 s).",
        "type": "timeout_error",
        "param": None,
        "code": "gateway_timeout",
    }
}
INVALID_API_KEY_BODY = {
    "error": {
        "message": "Missing or invalid API key: send it in the x-api-key header.",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
}
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "host"}
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@dataclass
class _Gateway:
    """The gateway's settings and its client to the app behind it (base_url: the app's URL)."""

    client: httpx.AsyncClient
    api_keys: Mapping[str, str]
    streamed: set[tuple[str, str]]
    integration_timeout_s: float
    stream_timeout_s: float
    stream_idle_timeout_s: float
    stage: str


async def proxy(request: Request) -> Response:
    """Every route: the key checked, the request context added, the app's answer buffered or streamed."""
    gateway: _Gateway = request.app.state.gateway
    path = request.url.path
    key_id = gateway.api_keys.get(request.headers.get("x-api-key", ""))
    if path not in PUBLIC_PATHS and key_id is None:
        return JSONResponse(INVALID_API_KEY_BODY, status_code=401)
    headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
    headers = [(k, v) for k, v in headers if k.lower() != "x-amzn-request-context"]
    headers.append(("x-amzn-request-context", json.dumps(_request_context(request, key_id, gateway.stage))))
    upstream = gateway.client.build_request(
        request.method, path, params=request.url.query, headers=headers, content=await request.body()
    )
    if (request.method, path) in gateway.streamed:
        return await _streamed(gateway, upstream)
    return await _buffered(gateway, upstream)


def _request_context(request: Request, key_id: str | None, stage: str) -> dict[str, Any]:
    """The request context as the Lambda Web Adapter hands it to the app (the caller's key id among it)."""
    path = request.url.path
    return {
        "requestId": str(uuid.uuid4()),
        "stage": stage,
        "httpMethod": request.method,
        "path": f"/{stage}{path}",
        "resourcePath": path,
        "identity": {"apiKeyId": key_id, "sourceIp": request.client.host if request.client else None},
    }


async def _buffered(gateway: _Gateway, upstream: httpx.Request) -> Response:
    try:
        with anyio.fail_after(gateway.integration_timeout_s):
            response = await gateway.client.send(upstream, stream=True)
            try:
                body = await response.aread()
            finally:
                with anyio.CancelScope(shield=True):  # on a cut too: the app sees its client go away
                    await response.aclose()
    except TimeoutError:
        return JSONResponse(INTEGRATION_TIMEOUT_BODY, status_code=504)
    return Response(body, status_code=response.status_code, headers=_response_headers(response))


async def _streamed(gateway: _Gateway, upstream: httpx.Request) -> Response:
    started = time.monotonic()
    try:
        with anyio.fail_after(min(gateway.stream_idle_timeout_s, gateway.stream_timeout_s)):
            response = await gateway.client.send(upstream, stream=True)
    except TimeoutError:
        return JSONResponse(INTEGRATION_TIMEOUT_BODY, status_code=504)
    return ClosingStreamingResponse(
        _stream_body(gateway, response, started),
        status_code=response.status_code,
        headers=_response_headers(response),
    )


async def _stream_body(gateway: _Gateway, response: httpx.Response, started: float) -> AsyncIterator[bytes]:
    """The app's bytes as they come, until the stream's time is up or it has been idle too long."""
    chunks = response.aiter_raw()
    try:
        while True:
            left = gateway.stream_timeout_s - (time.monotonic() - started)
            with anyio.fail_after(max(min(gateway.stream_idle_timeout_s, left), 0.001)):
                try:
                    chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    return
            yield chunk
    except TimeoutError:  # the gateway ends the stream; the client sees it end early
        return
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    await app.state.gateway.client.aclose()


def create_gateway_app(
    upstream_url: str,
    api_keys: Mapping[str, str],
    *,
    streamed_routes: Collection[tuple[str, str]] = STREAMED_ROUTES,
    integration_timeout_s: float = INTEGRATION_TIMEOUT_S,
    stream_timeout_s: float = STREAM_TIMEOUT_S,
    stream_idle_timeout_s: float = STREAM_IDLE_TIMEOUT_S,
    stage: str = "local",
) -> Starlette:
    """api_keys: key value -> key id (the id API Gateway gives the app as requestContext.identity.apiKeyId).
    streamed_routes: (method, path) pairs whose integration streams; every other route is buffered."""
    app = Starlette(routes=[Route("/{path:path}", proxy, methods=_METHODS)], lifespan=_lifespan)
    app.state.gateway = _Gateway(
        client=httpx.AsyncClient(base_url=upstream_url, timeout=httpx.Timeout(stream_timeout_s, connect=5.0)),
        api_keys=api_keys,
        streamed={(method.upper(), path) for method, path in streamed_routes},
        integration_timeout_s=integration_timeout_s,
        stream_timeout_s=stream_timeout_s,
        stream_idle_timeout_s=stream_idle_timeout_s,
        stage=stage,
    )
    return app


def _response_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP}
