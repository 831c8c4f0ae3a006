"""Limits on a request, enforced before anything parses it (both servers, and the Lambda path through Mangum).

A body over `max_bytes` (declared, or counted while reading) or JSON nested deeper than `max_depth` levels is
refused with 413 and an OpenAI-style error naming the limit. Python's json module recurses once per level, so a
body nested 1,000 levels deep would otherwise end in a RecursionError; no request these servers take needs more
than a few levels.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybrid_router.api.errors import error_response

MAX_JSON_DEPTH = 32
# A refused body is read to its end (and dropped) up to this size before the 413, so that the client hears it.
DRAIN_BYTES = 64 * 1024 * 1024

# A JSON string, escapes included (unrolled, so that a long string is matched at C speed).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPENING = frozenset(b"[{")
_FEW_BRACKETS = 4096  # below this, a plain loop is quicker than importing numpy


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), without parsing it: brackets inside
    strings do not count. Linear in the size of the body, at C speed (a 6 MB body takes milliseconds)."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) > _FEW_BRACKETS:  # a hostile body: numpy (imported only then, off every function's cold start)
        import numpy as np

        codes = np.frombuffer(brackets, dtype=np.uint8)
        steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
        return int(np.cumsum(steps, dtype=np.int64).max())
    depth = deepest = 0
    for code in brackets:
        depth += 1 if code in _OPENING else -1
        deepest = max(deepest, depth)
    return deepest


def repeated_query_parameter(query: bytes) -> str | None:
    """The first query parameter named twice (`?since=a&since=b`), whose meaning would be a guess; else None."""
    from urllib.parse import parse_qsl

    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name[:64]
        seen.add(name)
    return None


class BodyLimits:
    """Refuses, before the app sees it, a body over `max_bytes` or JSON nested deeper than `max_depth` (413), and a
    query parameter given more than once (422)."""

    def __init__(self, app: ASGIApp, max_bytes: int, max_depth: int = MAX_JSON_DEPTH):
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        repeated = repeated_query_parameter(scope.get("query_string", b""))
        if repeated is not None:
            response = error_response(
                422, f"The query parameter {repeated!r} is given more than once.", code="invalid_value", param=repeated
            )
            await response(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send, more=message.get("more_body", False))
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        whole = b"".join(chunks)
        # Fewer opening brackets than the limit cannot nest past it (a quick count spares the scan to most bodies).
        opening = whole.count(b"[") + whole.count(b"{")
        depth = json_depth(whole) if opening > self.max_depth else 0
        if depth > self.max_depth:
            response = error_response(
                413,
                f"Request body nested too deeply: JSON arrays and objects may nest at "
                f"most {self.max_depth} levels, this body nests {depth}.",
                code="body_too_deep",
            )
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, more: bool = True) -> None:
        """The 413, once the rest of the body (up to DRAIN_BYTES) is read and dropped: a client that sends the whole
        body before reading (curl, requests) gets the answer, where closing on unread data would reset the
        connection under it. Nothing is kept, so memory stays flat whatever the size."""
        drained = 0
        while more and drained <= DRAIN_BYTES:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            drained += len(message.get("body", b""))
            more = message.get("more_body", False)
        response = error_response(
            413, f"Request body too large: the limit is {self.max_bytes} bytes.", code="body_too_large"
        )
        await response(scope, receive, send)
