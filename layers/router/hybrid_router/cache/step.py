"""The pipeline's cache step: before a strong attempt, look the request up; after a strong answer completed OK,
store it. Kept apart from the pipeline so the pipeline names it in two places and knows nothing else about it."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from hybrid_router.cache.key import cache_key
from hybrid_router.cache.policy import CachePolicy
from hybrid_router.cache.store import CachedAnswer
from hybrid_router.decision import BUDGET_PREFIX, FALLBACK_PREFIX, DecisionRecord

log = logging.getLogger("hybrid_router.cache")
STORED_FINISH_REASONS = ("stop", "length")
_PIECE = re.compile(r"\S+\s*|\s+")


class AnswerStore(Protocol):
    """Where answers are kept: SQLite on the device (AnswerCache), DynamoDB per tenant in the cloud."""

    def get(self, key: str) -> CachedAnswer | None: ...

    def put(self, key: str, answer: CachedAnswer) -> bool: ...


@dataclass
class CacheStep:
    cache: AnswerStore
    policy: CachePolicy = CachePolicy()

    def key(self, messages: list[dict], model: str, options: dict, extra: dict | None) -> str | None:
        """The request's key, or None when this request does not use the cache (off, sampled, or opted out)."""
        if not self.policy.applies(options.get("temperature"), extra):
            return None
        return cache_key(
            messages,
            model,
            options["max_tokens"],
            options.get("temperature"),
            options.get("top_p"),
            options.get("stop"),
        )

    def lookup(self, key: str | None) -> CachedAnswer | None:
        """The cached answer, or None: a miss, or any fault of the cache (it never fails a request)."""
        if key is None:
            return None
        try:
            return self.cache.get(key)
        except Exception:  # noqa: BLE001 - the stores catch their own faults; anything else is a miss too
            log.warning("answer cache lookup failed: a miss", exc_info=True)
            return None

    def remember(self, key: str | None, text: str, finish_reason: str | None, record: DecisionRecord) -> bool:
        """Stores a strong answer that completed OK: status ok, a finish reason of stop or length, the route the
        plan chose (no fallback), and not itself a cache hit. Anything else is never stored."""
        if key is None or record.route != "strong" or record.status != "ok" or record.cached_from is not None:
            return False
        if record.reason.startswith((FALLBACK_PREFIX, "cache:", BUDGET_PREFIX)):
            return False
        if (finish_reason or "stop") not in STORED_FINISH_REASONS:
            return False
        try:
            return self._put(key, text, finish_reason, record)
        except Exception:  # noqa: BLE001 - the answer is delivered and recorded; not caching it is harmless
            log.warning("answer cache store failed", exc_info=True)
            return False

    def _put(self, key: str, text: str, finish_reason: str | None, record: DecisionRecord) -> bool:
        return self.cache.put(
            key,
            CachedAnswer(
                text=text,
                finish_reason=finish_reason or "stop",
                prompt_tokens=record.prompt_tokens,
                completion_tokens=record.completion_tokens,
                decision_id=record.decision_id,
                cost_usd=record.strong_cost_usd,  # the strong answer's own price (no discarded draft in it)
                model=record.model_used,
            ),
        )


def cached_pieces(text: str) -> Iterator[str]:
    """A cached answer as a stream: word by word, whitespace kept, so the pieces join to the text."""
    yield from _PIECE.findall(text)
