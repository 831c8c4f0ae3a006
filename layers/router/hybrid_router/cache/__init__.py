"""A cache of strong answers, so a repeated request is not paid twice.

`key.cache_key` hashes what decides an answer: the normalized conversation (roles and texts, whitespace collapsed)
and the parameters that change it (strong model, max_tokens, temperature, top_p, stop). `store.AnswerCache` keeps
the answers in SQLite beside the decision log (its own file, WAL), with a TTL and a size bound; anything it cannot
read is a miss, never an error. `policy.CachePolicy` says whether a request may use the cache at all.
"""

from hybrid_router.cache.key import cache_key, normalize_text
from hybrid_router.cache.policy import CachePolicy
from hybrid_router.cache.store import AnswerCache, CachedAnswer
from hybrid_router.decision import CACHE_REASONS

CACHE_EXACT, CACHE_SIMILAR = CACHE_REASONS

__all__ = [
    "AnswerCache",
    "CACHE_EXACT",
    "CACHE_REASONS",
    "CACHE_SIMILAR",
    "CachePolicy",
    "CachedAnswer",
    "cache_key",
    "normalize_text",
]
