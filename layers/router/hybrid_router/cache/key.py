"""The cache key: a SHA-256 over the normalized conversation and the parameters that change an answer."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence

KEY_VERSION = 1  # part of every key: a change of the scheme never reads an old entry
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Runs of whitespace become one space, leading and trailing whitespace goes; case and punctuation stay
    (they can change an answer)."""
    return _SPACE.sub(" ", text).strip()


def cache_key(
    messages: Iterable[Mapping[str, object]],
    model: str,
    max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    stop: Sequence[str] | None,
) -> str:
    """64 hex digits. Two requests share a key only when every turn has the same role and, whitespace aside, the
    same text, and the strong model and every sampling parameter are the same. Stop sequences are kept as given
    (their whitespace matters); temperature None counts as 0 and top_p None as 1, as the backends send them."""
    turns = [[str(m.get("role", "")), normalize_text(str(m.get("content") or ""))] for m in messages]
    payload = {
        "v": KEY_VERSION,
        "model": model,
        "max_tokens": int(max_tokens),
        "temperature": float(temperature or 0.0),
        "top_p": float(1.0 if top_p is None else top_p),
        "stop": list(stop) if stop else [],
        "messages": turns,
    }
    blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
