"""Builds the edge service's parts from settings: the local model, the strong backend, the router, the log."""

from __future__ import annotations

import logging

from edge_client.config import ConfigError, Settings
from edge_client.routing_source import (
    LocalRouteSource,
    RemoteRouteSource,
    RouteSource,
    RoutingError,
    UnavailableRouteSource,
)
from edge_client.service import EdgeService
from hybrid_router.backends.base import ChatBackend
from hybrid_router.backends.llama_cpp import LlamaCppBackend, StatusCallback
from hybrid_router.stores.sqlite_log import DecisionLog

DEFAULT_CLOUD_STRONG_MODEL = "strong"
log = logging.getLogger("hybrid_router.edge")


def build_weak(settings: Settings, on_status: StatusCallback | None = None) -> LlamaCppBackend:
    return LlamaCppBackend(
        settings.local_model_path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        name=settings.local_model_name,
        on_status=on_status,
        max_waiting=settings.local_queue_limit,
        overflow_wait_s=settings.local_overflow_wait_s if settings.local_overflow == "wait" else 0.0,
    )


def build_strong(settings: Settings) -> ChatBackend | None:
    """The configured strong backend, or None when it is not configured (strong routes then fall back local)."""
    kind = settings.strong_kind
    timeout = settings.strong_timeout_s
    if kind == "sagemaker":
        if not settings.sagemaker_endpoint_name:
            return None
        from hybrid_router.backends.sagemaker import SageMakerBackend

        return SageMakerBackend(
            settings.sagemaker_endpoint_name,
            region=settings.sagemaker_region,
            endpoint_url=settings.sagemaker_endpoint_url,
            body_format=settings.sagemaker_body_format,
            timeout_s=timeout,
            model_name=settings.strong_model,
            container=settings.sagemaker_container,
            served_model_name=settings.sagemaker_served_model_name,
            inference_component=settings.sagemaker_inference_component,
        )
    from hybrid_router.backends.openai_compat import OpenAICompatBackend

    if kind == "openai":
        if not settings.openai_url:
            return None
        model = settings.strong_model or "default"
        backend = OpenAICompatBackend(
            settings.openai_url, api_key=settings.openai_api_key, model=model, timeout_s=timeout
        )
    else:
        if not settings.cloud_url:
            return None
        model = settings.strong_model or DEFAULT_CLOUD_STRONG_MODEL
        backend = OpenAICompatBackend(
            settings.cloud_url.rstrip("/") + "/v1",
            api_key=settings.api_key,
            model=model,
            timeout_s=timeout,
            api_key_header="x-api-key",
        )
    backend.name = model
    return backend


def build_route_source(settings: Settings) -> RouteSource:
    if settings.routing_mode == "remote":
        if not settings.cloud_url:
            raise ConfigError("routing_mode is remote but cloud_url is not set")
        return RemoteRouteSource(settings.cloud_url, settings.api_key, timeout_s=min(settings.strong_timeout_s, 10.0))
    from edge_client.routers import device_registry

    try:
        return LocalRouteSource(
            settings.router_path,
            registry=device_registry(settings),
            refresh_s=settings.router_refresh_s,
            data_dir=settings.data_dir,
            quality_target=settings.quality_target,
            quality_confidence=settings.quality_confidence,
            local_model=build_weak(settings).name,
        )
    except RoutingError as exc:  # not even the packaged router loads: requests that name a model still work
        log.error("NO ROUTER: %s; only requests that name a model can be answered", exc)
        return UnavailableRouteSource(str(exc))


def build_service(
    settings: Settings,
    on_status: StatusCallback | None = None,
    weak: ChatBackend | None = None,
    strong: ChatBackend | None = None,
) -> EdgeService:
    return EdgeService(
        settings,
        weak=weak or build_weak(settings, on_status),
        strong=strong if strong is not None else build_strong(settings),
        route_source=build_route_source(settings),
        decision_log=DecisionLog(settings.decision_log_path),
    )
