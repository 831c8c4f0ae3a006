"""The one interface every model backend implements (local llama.cpp, SageMaker, OpenAI-compatible URL)."""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable


class BackendError(RuntimeError):
    """A backend could not answer. `cause` is short and becomes `fallback:<cause>` in the decision record."""

    def __init__(self, message: str, cause: str = "error", status_code: int = 502, retry_after_s: float | None = None):
        super().__init__(message)
        self.cause = cause
        self.status_code = status_code
        self.retry_after_s = retry_after_s  # when the same request may pass (a busy model), for Retry-After


# The endpoint refused this input (TGI's 422 validation error, vLLM's or OpenAI's 400 context_length_exceeded, a 413):
# the same request fails again, anywhere. Callers answer it as the client's error (400), and the device does not
# retry it on its local model, whose context is smaller still.
INPUT_REJECTED = "strong_rejected_input"
# The local model has local_queue_limit requests waiting already: the strong model answers instead, or 429.
LOCAL_BUSY = "local_busy"
_REJECTING_STATUSES = frozenset({400, 413, 422})
_MESSAGE_LIMIT = 400


def endpoint_message(body: str | bytes) -> str:
    """The endpoint's own words from an error body: TGI's {"error": "..."}, OpenAI's {"error": {"message"}}, a
    {"message"} or plain text; trimmed."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            error = error.get("message")
        found = error or data.get("message") or data.get("detail")
        if found:
            text = str(found)
    text = " ".join(text.split())
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "\u2026"


def rejected_input(where: str, status: int | None, body: str | bytes) -> BackendError | None:
    """The one rule for every strong backend: an endpoint status that says the input itself was refused becomes
    cause INPUT_REJECTED (status 400) with the endpoint's message; anything else is None (the caller's usual error)."""
    if status not in _REJECTING_STATUSES:
        return None
    return BackendError(
        f"{where} rejected the input ({status}): {endpoint_message(body)}", cause=INPUT_REJECTED, status_code=400
    )


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
    """One call's answer and its own usage. `queue_s`: time spent waiting for the model (a local model serves
    one request at a time), which is neither generation time nor energy."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    queue_s: float = 0.0
    usage_estimated: bool = False  # the model reported no usage: the counts are the backend's estimate


@dataclass
class DraftCompletion:
    """A whole answer with each generated token's log-probability ({token, logprob}, in order), for cascade mode."""

    completion: Completion
    tokens: list[dict]


class StreamResult(NamedTuple):
    """What a stream returns when it is exhausted (the generator's StopIteration value): its own usage, never
    a shared backend's, so concurrent streams through one backend each know their own tokens and finish reason."""

    prompt_tokens: int
    completion_tokens: int
    finish_reason: str = "stop"
    queue_s: float = 0.0
    usage_estimated: bool = False
    model: str | None = None  # the model the server says answered (e.g. the cloud's real name behind "strong")


@runtime_checkable
class ChatBackend(Protocol):
    """messages are OpenAI-style dicts: [{"role": "user", "content": "..."}].

    stop and top_p are OpenAI's sampling options (None: the backend's default).
    decision_id names the decision record this call answers. Backends that reach hybrid-router's own
    cloud send it (`x-decision-id`) so the cloud does not log a second record for an answer the
    device already logs; SageMaker gets it as the InferenceId; local backends ignore it.
    """

    name: str

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Completion: ...

    def stream(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generator[str, None, StreamResult]:
        """Yields text pieces; returns (as StopIteration.value) the stream's own StreamResult."""
        ...


@runtime_checkable
class DraftingBackend(Protocol):
    """A backend that can answer with token log-probabilities (the local model, for cascade mode)."""

    name: str

    def draft(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> DraftCompletion: ...
