"""Planning: a chat request and its caller become a `Plan`, one way for the device and the cloud."""

from hybrid_router.planning.catalog import CASCADE, REMOTE, ModelCatalog
from hybrid_router.planning.errors import (
    InvalidRouting,
    RoutingError,
    SpendCapReached,
    UnknownModelError,
    UnknownRouterKind,
)
from hybrid_router.planning.planner import Caller, Planner, RoutingDefaults
from hybrid_router.planning.source import RouteQuery, Routers, RouteSource, Scored
from hybrid_router.planning.steps import Conversations, PrivacyGate, SpendCaps

__all__ = [
    "CASCADE",
    "REMOTE",
    "Caller",
    "Conversations",
    "InvalidRouting",
    "ModelCatalog",
    "Planner",
    "PrivacyGate",
    "RouteQuery",
    "RouteSource",
    "Routers",
    "RoutingDefaults",
    "RoutingError",
    "Scored",
    "SpendCapReached",
    "SpendCaps",
    "UnknownModelError",
    "UnknownRouterKind",
]
