"""The model names a server answers to, one rule for the device and the cloud.

`router` routes with the default router at its default threshold, `router-<kind>[-<threshold>]` with a router of
that kind (at that threshold), `router-cascade[-<min confidence>]` drafts locally first (where a local model can
draft); the weak and the strong model's own names, and the aliases `weak` and `strong`, force that model.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybrid_router.decision import Route
from hybrid_router.planning.errors import RoutingError, UnknownModelError, UnknownRouterKind
from hybrid_router.planning.source import RouteSource
from hybrid_router.routing import RouterSpec, parse_router_model

CASCADE = "cascade"  # the router kind in `router-cascade[-<min confidence>]`
REMOTE = "remote"  # the kind of a source that asks the cloud: the cloud decides which router names it serves


@dataclass(frozen=True)
class ModelCatalog:
    weak_name: str
    strong_name: str
    source: RouteSource | None
    has_weak: bool = True  # the cloud without a weak endpoint: `weak` is no name it serves
    has_strong: bool = True
    can_cascade: bool = False

    def forced(self, model: str) -> Route | None:
        """The route a model name forces, or None when it is no model's name."""
        if model in (self.strong_name, "strong"):
            return "strong"
        if model in (self.weak_name, "weak") and self.has_weak:
            return "weak"
        return None

    def router_spec(self, model: str) -> RouterSpec:
        """The router a `router...` name asks for; UnknownModelError for any other name, a kind not served here,
        or cascade mode where the local model cannot draft."""
        spec = parse_router_model(model)
        if spec is None or self.source is None:
            raise UnknownModelError(model, self.names())
        if spec.kind == CASCADE and not self.can_cascade:
            raise UnknownModelError(model, self.names(), why="cascade mode needs the local llama.cpp model")
        return spec

    def serves(self, model: str) -> bool:
        """Whether a chat request may ask for `model` (RoutingError: its router exists but cannot load)."""
        if self.forced(model) is not None:
            return True
        try:
            spec = self.router_spec(model)
        except UnknownModelError:
            return False
        if spec.kind == CASCADE or self.source is None or self.source.kind == REMOTE:
            return True
        try:
            return self.source.serves_kind(spec.kind)
        except UnknownRouterKind:
            return False

    def cards(self) -> list[tuple[str, str]]:
        """(name, description) of each model GET /v1/models lists."""
        cards = [("router", "routes each prompt with the default router at its default threshold")]
        if self.source is not None and self.source.kind not in (REMOTE, "unavailable"):
            kind, threshold = self.source.kind, self.source.default_threshold
            cards.append((f"router-{kind}-{threshold:g}", f"the {kind} router at threshold {threshold:g}, named"))
        if self.can_cascade:
            cards.append((f"router-{CASCADE}", "the local model drafts; the strong model answers what it doubts"))
        if self.has_weak:
            cards += [(self.weak_name, "the weak model"), ("weak", f"alias of {self.weak_name}")]
        if self.has_strong:
            cards += [(self.strong_name, "the strong model"), ("strong", f"alias of {self.strong_name}")]
        return list({name: (name, about) for name, about in reversed(cards)}.values())[::-1]

    def names(self) -> list[str]:
        return [name for name, _ in self.cards()]


__all__ = ["CASCADE", "REMOTE", "ModelCatalog", "RoutingError"]
