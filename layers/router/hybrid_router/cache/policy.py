"""Whether a request may use the cache: the settings, the request's temperature, and the request's own opt-out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The request field that skips the cache (`"cache": false` in a chat request's body); `serve` sets it from a
# `Cache-Control: no-cache` (or `no-store`) header.
REQUEST_FIELD = "cache"


@dataclass(frozen=True)
class CachePolicy:
    """`enabled`: the cache is on at all. `any_temperature`: answers sampled at a temperature above 0 are cached
    too (off by default: such a request asks for a fresh sample each time)."""

    enabled: bool = True
    any_temperature: bool = False

    def applies(self, temperature: float | None, extra: dict[str, Any] | None) -> bool:
        if not self.enabled:
            return False
        if (extra or {}).get(REQUEST_FIELD) is False:
            return False
        return self.any_temperature or not temperature


def skips_cache(cache_control: str | None) -> bool:
    """A `Cache-Control` header asking for a fresh answer (`no-cache` or `no-store`, any case)."""
    if not cache_control:
        return False
    directives = {part.strip().split("=", 1)[0].lower() for part in cache_control.split(",")}
    return bool(directives & {"no-cache", "no-store"})


def opt_out(request: Any) -> None:
    """Mark a request (a ChatCompletionRequest, which keeps unknown fields) as skipping the cache, as a caller's
    `Cache-Control: no-cache` asks: the same as its own `"cache": false`."""
    extra = request.__pydantic_extra__
    if extra is not None:
        extra[REQUEST_FIELD] = False
