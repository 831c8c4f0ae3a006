"""Router runtime: score a prompt with router.onnx (onnxruntime, numpy, tokenizers; never torch)."""

from hybrid_router.routing.artifact import RouterInfo, RouterLoadError
from hybrid_router.routing.router import (
    RouteDecision,
    Router,
    available_kinds,
    load_router,
    load_router_for_kind,
)
from hybrid_router.routing.spec import RouterSpec, parse_router_model

__all__ = [
    "RouteDecision",
    "Router",
    "RouterInfo",
    "RouterLoadError",
    "RouterSpec",
    "available_kinds",
    "load_router",
    "load_router_for_kind",
    "parse_router_model",
]
