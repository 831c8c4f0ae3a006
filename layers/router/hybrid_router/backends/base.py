"""The one interface every model backend implements (local llama.cpp, SageMaker, OpenAI-compatible URL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class BackendError(RuntimeError):
    """A backend could not answer. `cause` is short and becomes `fallback:<cause>` in the decision record."""

    def __init__(self, message: str, cause: str = "error", status_code: int = 502):
        super().__init__(message)
        self.cause = cause
        self.status_code = status_code


def sampling_options(stop: list[str] | None, top_p: float | None) -> dict:
    """OpenAI's stop and top_p as keyword arguments, only where given (a backend keeps its defaults otherwise)."""
    options: dict = {}
    if stop:
        options["stop"] = list(stop)
    if top_p is not None:
        options["top_p"] = top_p
    return options


@dataclass
class Completion:
    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"


@runtime_checkable
class ChatBackend(Protocol):
    """messages are OpenAI-style dicts: [{"role": "user", "content": "..."}].

    stop and top_p are OpenAI's sampling options (None: the backend's default).
    decision_id names the decision record this call answers. Backends that reach hybrid-router's own
    cloud send it (`x-decision-id`) so the cloud does not log a second record for an answer the
    device already logs; SageMaker gets it as the InferenceId; local backends ignore it.
    """

    name: str

    def complete(self, messages: list[dict], max_tokens: int = 256, temperature: float = 0.0,
                 decision_id: str | None = None, stop: list[str] | None = None,
                 top_p: float | None = None) -> Completion: ...

    def stream(self, messages: list[dict], max_tokens: int = 256, temperature: float = 0.0,
               decision_id: str | None = None, stop: list[str] | None = None,
               top_p: float | None = None) -> Iterator[str]:
        """Yields text pieces. After exhaustion, `last_usage` holds (prompt_tokens, completion_tokens)."""
        ...
