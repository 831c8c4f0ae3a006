"""Router names in an OpenAI `model` field, RouteLLM style: `router`, `router-<kind>`, `router-<kind>-<threshold>`."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NAME = re.compile(r"^router(?:-(?P<kind>[a-z][a-z0-9_]*))?(?:-(?P<threshold>[0-9]*\.?[0-9]+(?:[eE]-?[0-9]+)?))?$")


@dataclass(frozen=True)
class RouterSpec:
    """What a model name asks for. `kind` None means the default router; `threshold` None its default threshold."""

    name: str
    kind: str | None = None
    threshold: float | None = None


def parse_router_model(name: str) -> RouterSpec | None:
    """`router` -> default router; `router-mf` -> kind mf; `router-mf-0.116` -> kind mf at threshold 0.116.

    `router-default[-t]` names the default router explicitly. Anything else (a plain model name,
    a threshold outside [0, 1], a malformed suffix) returns None: it is not a router name.
    """
    if not isinstance(name, str):
        return None
    match = _NAME.match(name.strip().lower())
    if match is None:
        return None
    kind = match.group("kind")
    if kind == "default":
        kind = None
    threshold_text = match.group("threshold")
    threshold: float | None = None
    if threshold_text is not None:
        threshold = float(threshold_text)
        if not math.isfinite(threshold) or not 0.0 <= threshold <= 1.0:
            return None
    return RouterSpec(name=name, kind=kind, threshold=threshold)
