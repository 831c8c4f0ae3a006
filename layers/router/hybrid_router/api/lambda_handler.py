"""The Lambda entry point shared by every function: Mangum over create_app, wrapped in Powertools.

Logger (correlation id = the API Gateway request id), Metrics (EMF, namespace HybridRouter) and Tracer (X-Ray).
Mangum cannot stream: a `stream: true` chat request is answered as one buffered text/event-stream body.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Any

from hybrid_router.api.app import RouteGroup

METRICS_NAMESPACE = "HybridRouter"


def _unreadable_event_response(exc: Exception) -> dict:
    from hybrid_router.openai_schema import error_body

    message = f"This function could not read the API Gateway event ({type(exc).__name__}: {exc})."
    return {
        "statusCode": 400,
        "headers": {"content-type": "application/json"},
        "isBase64Encoded": False,
        "body": json.dumps(error_body(message, code="unreadable_event")),
    }


def load_router_at_init(app: Any, logger: Any) -> None:
    """Load the router during the init phase (full CPU, before the first request's clock starts). A broken router
    file is not fatal here: requests then get a clear 503 naming the problem."""
    from hybrid_router.api.errors import ApiError

    try:
        _ = app.state.services.router
    except ApiError as exc:
        logger.error("router not loaded at init", extra={"error": exc.message})


def make_handler(groups: Collection[RouteGroup], **parts: Any) -> Callable[[dict, Any], dict]:
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.metrics import MetricUnit
    from mangum import Mangum

    from hybrid_router.api.app import create_app
    from hybrid_router.api.telemetry import PowertoolsTelemetry

    logger = Logger()  # service name and level: POWERTOOLS_SERVICE_NAME / POWERTOOLS_LOG_LEVEL
    tracer = Tracer()
    metrics = Metrics(namespace=METRICS_NAMESPACE)
    parts.setdefault("telemetry", PowertoolsTelemetry(metrics, logger))
    app = create_app(groups=groups, **parts)
    if "inference" in groups:
        load_router_at_init(app, logger)
    asgi = Mangum(app, lifespan="off")

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
    @tracer.capture_lambda_handler
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: dict, context: Any) -> dict:
        try:
            response = asgi(event, context)
        except Exception as exc:  # an event the adapter cannot read (API Gateway never sends one): answer, not crash
            logger.exception("event not handled")
            response = _unreadable_event_response(exc)
        status = int(response.get("statusCode", 500))
        metrics.add_metric(name="HttpResponses", unit=MetricUnit.Count, value=1)
        if status >= 500:
            metrics.add_metric(name="HttpServerErrors", unit=MetricUnit.Count, value=1)
        logger.info("request", extra={"method": event.get("httpMethod"), "path": event.get("path"), "status": status})
        return response

    handler.asgi_app = asgi.app  # type: ignore[attr-defined]
    handler.metrics = metrics  # type: ignore[attr-defined]
    return handler


def make_streaming_app(groups: Collection[RouteGroup], **parts: Any) -> Any:
    """The app a function runs under uvicorn behind the Lambda Web Adapter (functions/chat), whose responses API
    Gateway streams: no handler wraps an invocation there, so metrics are flushed as they are made
    (FlushingPowertoolsTelemetry) and the router is loaded now, during the init phase."""
    from aws_lambda_powertools import Logger, Metrics

    from hybrid_router.api.app import create_app
    from hybrid_router.api.telemetry import FlushingPowertoolsTelemetry

    logger = Logger()
    metrics = Metrics(namespace=METRICS_NAMESPACE)
    parts.setdefault("telemetry", FlushingPowertoolsTelemetry(metrics, logger))
    app = create_app(groups=groups, **parts)
    if "inference" in groups:
        load_router_at_init(app, logger)
    return app
