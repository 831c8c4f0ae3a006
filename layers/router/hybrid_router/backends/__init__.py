"""Model backends: anything that turns chat messages into an answer."""

from hybrid_router.backends.base import BackendError, ChatBackend, Completion, StreamResult

__all__ = ["BackendError", "ChatBackend", "Completion", "StreamResult"]
