"""Why a request cannot be planned. The HTTP face maps each to one status and code (hybrid_router.http_face)."""

from __future__ import annotations

from hybrid_router.backends.base import BackendError
from hybrid_router.budget import BudgetExceeded


class RoutingError(RuntimeError):
    """No decision could be made (router file unreadable, cloud router unreachable): 503 `router_unavailable`."""


class UnknownRouterKind(RoutingError):
    """A `router-<kind>` name asks for a kind that is not installed: the caller's mistake, not an outage."""


class UnknownModelError(ValueError):
    """A `model` no server here answers to: 404 `model_not_found`."""

    def __init__(self, model: str, valid: list[str], why: str | None = None):
        super().__init__(
            f"The model {model!r} does not exist here{f' ({why})' if why else ''}; valid models: {', '.join(valid)} "
            "(or router-<kind>-<threshold>, e.g. router-mf-0.2). GET /v1/models lists the models served."
        )
        self.model = model
        self.valid = valid


class InvalidRouting(ValueError):
    """The request's routing numbers cannot be used with this router (a strong share without a calibration
    table): 422 `invalid_value`."""


class SpendCapReached(BackendError):
    """A request that names the strong model while a spend cap is reached: refused, never answered locally
    instead (unless the user turned on forced_fallback)."""

    def __init__(self, over: BudgetExceeded):
        super().__init__(
            f"the strong model was asked for by name, but {over}; raise the cap, wait for it to reset, or ask "
            "for `router` or the local model",
            cause=over.reason.replace(":", "_"),
            status_code=429,
        )
