"""The one chat router both servers mount: POST /v1/chat/completions and GET /v1/models[/{model}].

A server gives a dependency that returns its `ChatDoor` for the request (the device's service, the cloud's
services under the caller's identity): the door plans and answers; this module reads the request, refuses what no
model should see, and shapes the answer as OpenAI's response (plain or server-sent events) with the `routing`
block (hybrid_router.http_face). Errors are raised as they are and become HTTP in one table
(hybrid_router.api.errors), the same on both servers.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Request, params
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hybrid_router.api.errors import ApiError, error_type
from hybrid_router.api.models import ModelCard, ModelList
from hybrid_router.api.openapi import errors
from hybrid_router.api.streaming import ClosingStreamingResponse
from hybrid_router.backends.base import BackendError
from hybrid_router.cache.policy import opt_out, skips_cache
from hybrid_router.http_face import chat_response, routing_block, routing_headers
from hybrid_router.openai_schema import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    completion_chunk,
    error_body,
    usage_chunk,
)
from hybrid_router.pipeline import Answer, Plan, StreamingAnswer
from hybrid_router.planning import ModelCatalog


@dataclass(frozen=True)
class ChatHeaders:
    """What a client may say in headers: its conversation key, the decision id it logs the answer under (a caller
    that keeps its own decision log), and `Cache-Control: no-cache` for a fresh answer."""

    conversation_id: str | None = None
    decision_id: str | None = None
    cache_control: str | None = None


class ChatDoor(Protocol):
    """A server's side of a chat request."""

    @property
    def catalog(self) -> ModelCatalog: ...

    @property
    def stream_limit_s(self) -> float | None: ...

    def plan(self, request: ChatCompletionRequest, headers: ChatHeaders) -> Plan: ...

    def complete(self, request: ChatCompletionRequest, plan: Plan, cancelled: Callable[[], bool]) -> Answer: ...

    def stream(self, request: ChatCompletionRequest, plan: Plan) -> StreamingAnswer: ...


# The headers a chat request may carry, read straight from the request (no dependency to solve per request).
HEADERS = {
    "x-conversation-id": "the conversation this message belongs to (kept in the record; never the text)",
    "x-decision-id": "a new ULID the answer and its record carry (callers that keep their own decision log)",
    "cache-control": "`no-cache`: a fresh answer, not one from the answer cache",
}
HEADER_PARAMETERS = [
    {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": about}
    for name, about in HEADERS.items()
]


_HEADER_NAMES = {name.encode(): name for name in HEADERS}


def chat_headers(request: Request) -> ChatHeaders:
    """The chat headers, in one pass over the raw headers (a miss costs nothing; the last of a repeated one wins)."""
    found = {
        _HEADER_NAMES[name]: value.decode("latin-1")
        for name, value in request.scope["headers"]
        if name in _HEADER_NAMES
    }
    return ChatHeaders(found.get("x-conversation-id"), found.get("x-decision-id"), found.get("cache-control"))


def check_input(request: ChatCompletionRequest) -> None:
    """What validation lets through but no model should see: refused before routing, so nothing is charged or
    logged."""
    problem = request.input_problem()
    if problem is not None:
        raise ApiError(
            413 if problem.too_large else 422,
            problem.message[0].upper() + problem.message[1:] + ".",
            code=problem.code,
            param=problem.param,
        )


def chat_router(
    door: Callable[[Request], Awaitable[ChatDoor]],
    *,
    chat_errors: tuple[int, ...] = (),
    dependencies: Sequence[params.Depends] = (),
) -> APIRouter:
    """The chat routes over the door `door(request)` opens (a plain coroutine, not a dependency: FastAPI solves
    little per request); `chat_errors`: the statuses the server's door adds to the documented ones;
    `dependencies`: what runs before the body is read (the cloud's caller identity)."""
    router = APIRouter(dependencies=list(dependencies))

    @router.post(
        "/v1/chat/completions",
        response_model=ChatCompletionResponse,
        response_model_exclude_none=True,
        responses={200: {"content": {"text/event-stream": {}}}, **errors(404, 413, 422, 502, 503, 504, *chat_errors)},
        openapi_extra={"parameters": HEADER_PARAMETERS},
    )
    async def chat_completions(body: ChatCompletionRequest, http_request: Request) -> Any:
        """OpenAI chat completions. `model` "router" / "router-<kind>-<threshold>" routes; a model's own name
        (or `weak` / `strong`) forces it. Every answer carries its decision in `routing` and x-hybrid-router-*
        headers."""
        chat, headers = await door(http_request), chat_headers(http_request)
        check_input(body)
        if skips_cache(headers.cache_control):  # a fresh answer, as the request field `"cache": false` asks
            opt_out(body)
        plan = await run_in_threadpool(chat.plan, body, headers)
        if body.stream:
            answer = await run_in_threadpool(chat.stream, body, plan)
            return event_stream(answer, body.include_usage(), chat.stream_limit_s)
        return plain_response(await complete_unless_gone(http_request, chat, body, plan), plan)

    @router.get("/v1/models", response_model=ModelList, responses=errors(503))
    async def list_models(http_request: Request) -> ModelList:
        chat = await door(http_request)
        cards = await run_in_threadpool(lambda: chat.catalog.cards())  # may load the router
        return ModelList(data=[ModelCard(id=name, description=about) for name, about in cards])

    @router.get("/v1/models/{model:path}", response_model=ModelCard, responses=errors(404, 503))
    async def retrieve_model(model: str, http_request: Request) -> ModelCard:
        """One model by name: a listed one, or any name a chat request accepts (e.g. `router-mf-0.4`); else 404."""
        chat = await door(http_request)
        listed = dict(await run_in_threadpool(lambda: chat.catalog.cards()))
        if model in listed:
            return ModelCard(id=model, description=listed[model])
        if not await run_in_threadpool(chat.catalog.serves, model):
            raise ApiError(
                404,
                f"The model '{model}' does not exist here; GET /v1/models lists the models served.",
                code="model_not_found",
                param="model",
            )
        return ModelCard(id=model, description="a router name a chat request accepts")

    return router


def plain_response(answer: Answer, plan: Plan) -> JSONResponse:
    record = answer.record
    routing = routing_block(plan, record.route, record.reason, record.model_used, record)
    if not answer.stored:  # the cloud's record could not be written: the caller may re-send it (idempotent)
        routing["unstored_record"] = record.model_dump(mode="json")
    body = chat_response(record, answer.text, answer.finish_reason, routing)
    return JSONResponse(body.model_dump(exclude_none=True), headers=routing_headers(routing))


async def complete_unless_gone(http_request: Request, chat: ChatDoor, body: ChatCompletionRequest, plan: Plan) -> Any:
    """A plain answer whose generation stops soon after the client hangs up (ClientGone), instead of running on
    to max_tokens and holding the local model from everyone behind it."""
    gone = threading.Event()

    async def watch() -> None:  # the body is read: the next ASGI message is the client hanging up
        while (await http_request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        return await run_in_threadpool(chat.complete, body, plan, gone.is_set)
    finally:
        gone.set()
        watcher.cancel()


# ---------------------------------------------------------------- server-sent events


class StreamLimit(Exception):
    """An answer streamed for longer than the server allows (ended and recorded already)."""

    def __init__(self, limit_s: float):
        super().__init__(
            f"The answer was still streaming after {limit_s:g} s, the longest a stream may last here; it ends "
            "with what was sent (recorded as such). Ask for fewer max_tokens."
        )


class _Pump:
    """Runs a StreamingAnswer to the end in one worker thread, handing pieces to the event loop.

    The generating thread never waits for the network (no thread hop per token), which keeps tokens/s at the
    model's own speed; `stop()` ends generation early when the client goes away. An answer still streaming after
    `limit_s` is ended by the worker (recorded with error "stream_limit")."""

    _DONE = object()

    def __init__(self, answer: StreamingAnswer, limit_s: float | None) -> None:
        self.answer = answer
        self.limit_s = limit_s
        self.started = time.monotonic()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.loop = asyncio.get_running_loop()
        self.stopped = threading.Event()
        self.future = self.loop.run_in_executor(None, self._produce)

    def _produce(self) -> None:
        pieces = iter(self.answer)
        put = self.queue.put_nowait
        try:
            for piece in pieces:
                if self.stopped.is_set():
                    break
                self.loop.call_soon_threadsafe(put, piece)
                if self._over_limit():
                    self.answer.close("stream_limit")
                    raise StreamLimit(self.limit_s or 0.0)
            self.loop.call_soon_threadsafe(put, self._DONE)
        except BaseException as exc:  # handed to the event loop, which reports it in the stream
            self.loop.call_soon_threadsafe(put, exc)
        finally:
            pieces.close()  # type: ignore[attr-defined]
            self.answer.close()

    def _over_limit(self) -> bool:
        late = self.limit_s is not None and time.monotonic() - self.started > self.limit_s
        return late and self.answer.record is None

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.stopped.set()


def _sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


def _error_event(status: int, message: str, code: str) -> bytes:
    return _sse(error_body(message, error_type(status), code=code))


def _broken_off(exc: BaseException) -> bytes | None:
    """The error event for what ended a stream that had started; None for anything else."""
    from hybrid_router.stores.sqlite_log import DecisionLogError

    if isinstance(exc, StreamLimit):
        return _error_event(504, str(exc), "stream_limit")
    if isinstance(exc, BackendError):  # recorded by the answer, with the pieces delivered
        return _error_event(502, f"The answer broke off: {exc}", exc.cause)
    if isinstance(exc, DecisionLogError):  # the text already went out; say it is not recorded
        message = f"The decision log cannot be written, so this answer is not recorded: {exc}"
        return _error_event(507, message, "decision_log_unwritable")
    return None


async def _events(answer: StreamingAnswer, include_usage: bool, limit_s: float | None) -> AsyncIterator[bytes]:
    plan, model = answer.plan, answer.model
    completion_id, created = f"chatcmpl-{plan.decision_id}", int(time.time())
    first = completion_chunk(completion_id, model, {"role": "assistant", "content": ""}, created=created)
    first["routing"] = routing_block(plan, answer.route, answer.reason, model)
    if answer.cached is not None:  # served again from the answer cache
        first["routing"].update(cached_from=answer.cached.decision_id, cost_usd=0.0)
    yield _sse(first)
    pump = _Pump(answer, limit_s)
    try:
        try:
            async for piece in pump:
                yield _sse(completion_chunk(completion_id, model, {"content": piece}, created=created))
            await pump.future  # the record is written once the worker has finished
        except Exception as exc:
            event = _broken_off(exc)
            if event is None:
                raise
            yield event
            yield _sse("[DONE]")
            return
        last = completion_chunk(completion_id, model, {}, finish_reason=answer.finish_reason, created=created)
        record = answer.record
        if record is not None:  # the block again, with what the answer cost
            last["routing"] = routing_block(plan, record.route, record.reason, record.model_used, record)
        yield _sse(last)
        if include_usage and record is not None:
            yield _sse(usage_chunk(completion_id, model, record, created=created))
        yield _sse("[DONE]")
    finally:
        pump.stop()  # a client that went away ends generation at the next piece


def event_stream(answer: StreamingAnswer, include_usage: bool, limit_s: float | None) -> ClosingStreamingResponse:
    """Server-sent events. Under uvicorn (and the Lambda Web Adapter) they flow as generated; Mangum collects the
    whole body and returns it as one buffered text/event-stream response. The first piece was fetched before
    the response starts (Pipeline.stream), so a dead endpoint is still an error status."""
    routing = routing_block(answer.plan, answer.route, answer.reason, answer.model)
    headers = {"cache-control": "no-cache", "x-decision-id": answer.plan.decision_id, **routing_headers(routing)}
    return ClosingStreamingResponse(
        _events(answer, include_usage, limit_s), media_type="text/event-stream", headers=headers
    )


__all__ = ["ChatDoor", "ChatHeaders", "chat_router", "check_input", "event_stream", "plain_response"]
