"""A StreamingResponse that closes its body as soon as the response ends, however it ends.

Starlette stops iterating a streaming body when the client disconnects (it cancels the sending task), but it never
closes the body: the generator stays suspended until the garbage collector finds it, which can be never. For the
cloud API that meant the endpoint's stream stayed open and the decision record was never written; for the local
stand-ins (local_stack), that the model's lock stayed held and the next request waited indefinitely.
ClosingStreamingResponse closes the body in a `finally` of the response itself, so the generator's own `finally`
(recording the request, closing the upstream stream, releasing the lock) runs right after the disconnect.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

log = logging.getLogger("hybrid_router.api.streaming")


class ClosingStreamingResponse(StreamingResponse):
    def __init__(self, content: Any, *args: Any, **kwargs: Any):
        self._source = content
        super().__init__(content, *args, **kwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Shielded: a disconnect cancels this task, and the awaits below must still run to the end.
            with anyio.CancelScope(shield=True):
                await self.aclose_body()

    async def aclose_body(self) -> None:
        """Close the wrapper Starlette iterates and then the source itself. No worker thread is inside a sync
        source now: Starlette's thread calls are not abandoned on cancel, so they had finished before we got here."""
        for iterator in (self.body_iterator, self._source):
            try:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    await aclose()
                elif hasattr(iterator, "close"):
                    iterator.close()
            except Exception:  # closing must not hide the response's own outcome
                log.exception("closing a streaming body failed")
