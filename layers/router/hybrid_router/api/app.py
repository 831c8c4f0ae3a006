"""The cloud API app factory: the same FastAPI app under Mangum (Lambda) and uvicorn (local stack)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from fastapi import FastAPI

import hybrid_router
from hybrid_router.api import routes_inference, routes_lifecycle, routes_records
from hybrid_router.api.errors import install_error_handlers
from hybrid_router.api.limits import BodyLimits
from hybrid_router.api.models import HealthResponse
from hybrid_router.api.openapi import document
from hybrid_router.api.services import Services
from hybrid_router.api.settings import ApiSettings

RouteGroup = Literal["inference", "records"]
ALL_GROUPS: tuple[RouteGroup, ...] = ("inference", "records")
# Either header carries the key (API Gateway, in Lambda, reads x-api-key only).
API_KEY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    "Bearer": {"type": "http", "scheme": "bearer", "description": "the API key as a bearer token"},
}


def create_app(
    settings: ApiSettings | None = None, *, groups: Collection[RouteGroup] = ALL_GROUPS, **parts: Any
) -> FastAPI:
    """The API. `groups` picks the routes a Lambda function serves ("inference": chat, models, route;
    "records": decisions, usage, feedback, router versions, experiment reports); /health is always there. `parts` replace what would be built from
    settings: router, store, strong_backend, weak_backend, cost_model, telemetry (see Services)."""
    settings = settings or ApiSettings.from_env()
    unknown = set(groups) - set(ALL_GROUPS)
    if unknown:
        raise ValueError(f"unknown route groups {sorted(unknown)}; choose from {ALL_GROUPS}")
    app = FastAPI(
        title="hybrid-router cloud API",
        version=hybrid_router.__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.services = Services(settings, **parts)
    install_error_handlers(app)
    if "inference" in groups:
        app.include_router(routes_inference.chat_routes)
        app.include_router(routes_inference.router)
    if "records" in groups:
        app.include_router(routes_records.router)
        app.include_router(routes_lifecycle.router)
    served = sorted(groups)

    @app.get("/health", response_model=HealthResponse)
    def health() -> HealthResponse:
        """Liveness only (no key needed, touches neither the router nor AWS)."""
        return HealthResponse(version=hybrid_router.__version__, routes=list(served))

    app.add_middleware(BodyLimits, max_bytes=settings.max_body_bytes)
    document(app, schemes=API_KEY_SCHEMES, public={"/health"}, protected=(401, 403))
    return app
