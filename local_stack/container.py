"""A SageMaker bring-your-own-container model server with a real llama.cpp model behind it.

The container contract: `GET /ping` (200 when ready) and `POST /invocations`. Bodies come in two shapes:
  - TGI/LMI: {"inputs": "<rendered prompt>", "parameters": {"max_new_tokens", "temperature", "details", ...},
    "stream": bool}; answers [{"generated_text", "details"}] or, streaming, `data:{"token": {...}}` lines.
  - OpenAI messages: {"messages": [...], "max_tokens", "stream"}; answers a chat.completion or SSE chunks.
Streaming is chosen by the body's "stream": true (TGI's convention on SageMaker), answered with chunked
transfer encoding, which the runtime turns into PayloadPart events for InvokeEndpointWithResponseStream.
The same app also serves `POST /v1/chat/completions` and `GET /v1/models`, so it doubles as a plain
OpenAI-compatible server (optionally behind an API key).

Input the model cannot take is refused as TGI refuses it, before any generation: 422
{"error": "Input validation error: ...", "error_type": "validation"} for a prompt whose tokens plus max_new_tokens
exceed the context window (TGI's max_total_tokens), a content part that is not text, or text that is not UTF-8
(a lone surrogate). A body that does not parse is 400 with an OpenAI-style error. A generation that fails anyway is a
JSON 500, or, once a stream has started, a last `{"error": ..., "error_type": "generation"}` event: never a bare
traceback or a dropped connection. Model work runs off the event loop, so /ping answers while a stream generates.
A client that goes away mid-stream stops the generation: the stream is closed at once (ClosingStreamingResponse) and
the model's lock released for the next request.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hybrid_router.api.streaming import ClosingStreamingResponse
from hybrid_router.backends.sagemaker import TGI_MAX_STOP_SEQUENCES
from hybrid_router.openai_schema import ChatCompletionRequest, completion_chunk, error_body
from hybrid_router.ulid import new_ulid
from local_stack.model import Generation, LlamaTextModel, Piece, PromptTooLong

log = logging.getLogger("local_stack.container")

MAX_NEW_TOKENS = 4096
TOKEN_DELAY_ENV = "LOCAL_SAGEMAKER_TOKEN_DELAY_S"
_TGI_FINISH = {"length": "length", "stop": "eos_token"}


class TextModel(Protocol):
    name: str
    loaded: bool
    n_ctx: int

    def load(self) -> None: ...
    def check_fits(self, prompt_tokens: int, max_new_tokens: int) -> None: ...
    def prompt_token_count(self, prompt: str) -> int: ...
    def chat_token_count(self, messages: list[dict]) -> int: ...
    def prompt_tokens(self, text: str) -> list[tuple[int, str]]: ...
    def stream_prompt(
        self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[Piece]: ...
    def stream_chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Iterator[Piece]: ...
    def complete_prompt(
        self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Generation: ...
    def complete_chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generation: ...


class TgiParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    max_new_tokens: int = Field(default=20, ge=1, le=MAX_NEW_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    do_sample: bool = False
    stop: list[str] = Field(default_factory=list)
    details: bool = False
    decoder_input_details: bool = False
    return_full_text: bool = False


class TgiRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    inputs: str = Field(min_length=1)
    parameters: TgiParameters = Field(default_factory=TgiParameters)
    stream: bool = False

    def sampling_temperature(self) -> float:
        return (self.parameters.temperature or 1.0) if self.parameters.do_sample else 0.0


def _error(status: int, message: str, error_type: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(error_body(message, error_type), status_code=status)


class InputRejected(Exception):
    """Input the model cannot take; answered as TGI answers it: 422, error_type "validation"."""


def _rejected(message: str) -> JSONResponse:
    return JSONResponse({"error": f"Input validation error: {message}", "error_type": "validation"}, status_code=422)


def _context_error(exc: ValueError) -> bool:
    """llama.cpp's own refusal of a prompt longer than the context ("Requested tokens (n) exceed context window")."""
    return isinstance(exc, PromptTooLong) or "exceed context window" in str(exc)


def _stream_error(exc: Exception) -> dict[str, Any]:
    kind = "validation" if isinstance(exc, ValueError) and _context_error(exc) else "generation"
    return {
        "error": f"{'Input validation error' if kind == 'validation' else 'Generation failed'}: {exc}",
        "error_type": kind,
    }


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    detail = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return f"invalid request body: {detail}"


def _sse(event: dict[str, Any], space: bool = True) -> bytes:
    return (b"data: " if space else b"data:") + json.dumps(event).encode("utf-8") + b"\n\n"


def _tgi_response(model: TextModel, request: TgiRequest, token_delay_s: float = 0.0) -> dict[str, Any]:
    params = request.parameters
    result = model.complete_prompt(request.inputs, params.max_new_tokens, request.sampling_temperature(), params.stop)
    _pace(token_delay_s * result.completion_tokens)
    text = (request.inputs + result.text) if params.return_full_text else result.text
    out: dict[str, Any] = {"generated_text": text}
    if params.details or params.decoder_input_details:
        details: dict[str, Any] = {
            "finish_reason": _TGI_FINISH.get(result.finish_reason, "eos_token"),
            "generated_tokens": result.completion_tokens,
            "seed": None,
            "tokens": [],
        }
        if params.decoder_input_details:
            details["prefill"] = [{"id": i, "text": t, "logprob": None} for i, t in model.prompt_tokens(request.inputs)]
        out["details"] = details
    return out


def _pace(token_delay_s: float) -> None:
    """A slower GPU: each generated token is held this long before it is sent (the model keeps its lock)."""
    if token_delay_s > 0:
        time.sleep(token_delay_s)


def _tgi_stream(model: TextModel, request: TgiRequest, token_delay_s: float = 0.0) -> Iterator[bytes]:
    params = request.parameters
    pieces: list[str] = []
    finish = "stop"
    try:
        # closing(): when the client goes away this generator is closed, and the model's stream with it at once
        # (that releases the model's lock), not whenever the garbage collector gets to it.
        with closing(
            model.stream_prompt(request.inputs, params.max_new_tokens, request.sampling_temperature(), params.stop)
        ) as stream:
            for piece in stream:
                if piece.finish_reason:
                    finish = piece.finish_reason
                if piece.text:
                    _pace(token_delay_s)
                    pieces.append(piece.text)
                    token = {"id": None, "text": piece.text, "logprob": None, "special": False}
                    yield _sse(
                        {"index": len(pieces), "token": token, "generated_text": None, "details": None}, space=False
                    )
    except Exception as exc:  # the status is sent already: TGI ends such a stream with an error event
        log.warning("stream failed after %d tokens: %s: %s", len(pieces), type(exc).__name__, exc)
        yield _sse(_stream_error(exc), space=False)
        return
    # TGI closes with the end token (special), carrying the whole text and the details.
    last = {"id": None, "text": "", "logprob": None, "special": True}
    details = {"finish_reason": _TGI_FINISH.get(finish, "eos_token"), "generated_tokens": len(pieces), "seed": None}
    yield _sse(
        {"index": len(pieces) + 1, "token": last, "generated_text": "".join(pieces), "details": details}, space=False
    )


def _chat_messages(request: ChatCompletionRequest) -> list[dict]:
    """The messages as a chat template takes them: content as one string (text parts joined, null as empty)."""
    messages = []
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if part.get("type", "text") != "text":
                    raise InputRejected(
                        f"messages.{i}.content.{j} is of type {part.get('type')!r}; this model takes text only"
                    )
        messages.append({**message.model_dump(exclude_none=True), "content": message.text()})
    return messages


def _chat_response(model: TextModel, request: ChatCompletionRequest, messages: list[dict]) -> dict[str, Any]:
    result = model.complete_chat(
        messages, request.token_limit(256), request.temperature or 0.0, stop=request.stop_list(), top_p=request.top_p
    )
    return {
        "id": f"chatcmpl-{new_ulid()}",
        "object": "chat.completion",
        "created": 0,
        "model": model.name,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens,
        },
    }


def _chat_stream(
    model: TextModel, request: ChatCompletionRequest, messages: list[dict], token_delay_s: float = 0.0
) -> Iterator[bytes]:
    completion_id = f"chatcmpl-{new_ulid()}"
    yield _sse(completion_chunk(completion_id, model.name, {"role": "assistant", "content": ""}))
    count = 0
    finish = "stop"
    prompt_tokens = 0
    try:
        with closing(
            model.stream_chat(
                messages,
                request.token_limit(256),
                request.temperature or 0.0,
                stop=request.stop_list(),
                top_p=request.top_p,
            )
        ) as stream:
            for piece in stream:
                if piece.finish_reason:
                    finish = piece.finish_reason
                    prompt_tokens = piece.prompt_tokens or 0
                if piece.text:
                    _pace(token_delay_s)
                    count += 1
                    yield _sse(completion_chunk(completion_id, model.name, {"content": piece.text}))
    except Exception as exc:  # the status is sent already: end with an error event and [DONE]
        log.warning("stream failed after %d tokens: %s: %s", count, type(exc).__name__, exc)
        yield _sse(_stream_error(exc))
        yield b"data: [DONE]\n\n"
        return
    yield _sse(completion_chunk(completion_id, model.name, {}, finish_reason=finish))
    options = getattr(request, "stream_options", None) or {}
    if isinstance(options, dict) and options.get("include_usage"):
        yield _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model.name,
                "choices": [],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": count,
                    "total_tokens": prompt_tokens + count,
                },
            }
        )
    yield b"data: [DONE]\n\n"


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass
class _Container:
    """What the routes share: the model, the /v1 routes' API key (None: open), the delay held per token."""

    model: TextModel
    api_key: str | None
    token_delay_s: float
    load_on_startup: bool


router = APIRouter()  # the container's routes; create_container_app mounts them over one _Container


async def _container(request: Request) -> _Container:
    return request.app.state.container


def _answer_chat(container: _Container, body: Any) -> Response:
    """Runs in a worker thread (so does any stream's generation): the event loop never waits for the model."""
    try:
        request = ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "unencodable_text":  # TGI's validation error, as for any input the model cannot take
            return _rejected(f"{first['ctx']['param']} is not valid UTF-8 text (it holds an unpaired surrogate)")
        return _error(400, _validation_message(exc))
    model, token_delay_s = container.model, container.token_delay_s
    try:
        messages = _chat_messages(request)
        try:
            prompt_tokens = model.chat_token_count(messages)
        except (TemplateError, ValueError) as exc:  # the template's own raise_exception, e.g. role order
            raise InputRejected(f"the chat template cannot render these messages: {exc}") from None
        model.check_fits(prompt_tokens, request.token_limit(256))
        if request.stream:
            return ClosingStreamingResponse(
                _chat_stream(model, request, messages, token_delay_s), media_type="text/event-stream"
            )
        answer = _chat_response(model, request, messages)
        _pace(token_delay_s * answer["usage"]["completion_tokens"])
        return JSONResponse(answer)
    except InputRejected as exc:
        return _rejected(str(exc))
    except ValueError as exc:
        if _context_error(exc):
            return _rejected(str(exc))
        raise


def _answer_tgi(container: _Container, body: Any) -> Response:
    """Runs in a worker thread, as _answer_chat does."""
    try:
        request = TgiRequest.model_validate(body)
    except ValidationError as exc:
        return _error(400, _validation_message(exc))
    stops = len(request.parameters.stop)
    if stops > TGI_MAX_STOP_SEQUENCES:  # TGI's own check and wording
        return _rejected(f"`stop` supports up to {TGI_MAX_STOP_SEQUENCES} stop sequences. Given: {stops}")
    model, token_delay_s = container.model, container.token_delay_s
    try:
        model.check_fits(model.prompt_token_count(request.inputs), request.parameters.max_new_tokens)
        if request.stream:
            return ClosingStreamingResponse(_tgi_stream(model, request, token_delay_s), media_type="text/event-stream")
        return JSONResponse([_tgi_response(model, request, token_delay_s)])
    except ValueError as exc:
        if _context_error(exc):
            return _rejected(str(exc))
        raise


def _authorized(container: _Container, request: Request) -> bool:
    if container.api_key is None:
        return True
    bearer = request.headers.get("authorization", "")
    return bearer == f"Bearer {container.api_key}" or request.headers.get("x-api-key") == container.api_key


@router.get("/ping")
def ping(container: _Container = Depends(_container)) -> Response:
    return Response(status_code=200 if container.model.loaded else 503)


@router.post("/invocations")
async def invocations(request: Request, container: _Container = Depends(_container)) -> Response:
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    if "messages" in body:
        return await run_in_threadpool(_answer_chat, container, body)
    if "inputs" in body:
        return await run_in_threadpool(_answer_tgi, container, body)
    return _error(400, "request body needs 'inputs' (TGI/LMI shape) or 'messages' (OpenAI shape)")


@router.get("/v1/models")
def models(request: Request, container: _Container = Depends(_container)) -> Response:
    if not _authorized(container, request):
        return _error(401, "missing or wrong API key", "authentication_error")
    model = {"id": container.model.name, "object": "model", "owned_by": "local"}
    return JSONResponse({"object": "list", "data": [model]})


@router.post("/v1/chat/completions")
async def chat_completions(request: Request, container: _Container = Depends(_container)) -> Response:
    if not _authorized(container, request):
        return _error(401, "missing or wrong API key", "authentication_error")
    body = await _json_body(request)
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    return await run_in_threadpool(_answer_chat, container, body)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # JSON, as TGI answers a failed generation; the traceback goes to the server log only.
    return JSONResponse(
        {"error": f"Generation failed: {type(exc).__name__}: {exc}", "error_type": "generation"}, status_code=500
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    container: _Container = app.state.container
    if container.load_on_startup:
        container.model.load()
    yield


def create_container_app(
    model: TextModel, api_key: str | None = None, load_on_startup: bool = True, token_delay_s: float | None = None
) -> FastAPI:
    """The BYOC model server app. `api_key` guards only the /v1 OpenAI routes (SageMaker never sends one).
    `token_delay_s` (else env LOCAL_SAGEMAKER_TOKEN_DELAY_S, else 0) holds each generated token that long before
    it is sent, as a slower GPU would: the tokens are still the model's own, only later."""
    if token_delay_s is None:
        token_delay_s = float(os.environ.get(TOKEN_DELAY_ENV, "") or 0)
    if token_delay_s < 0:
        raise ValueError(f"token_delay_s must be >= 0, not {token_delay_s}")
    app = FastAPI(title="hybrid-router stand-in SageMaker container", docs_url=None, redoc_url=None, lifespan=_lifespan)
    app.state.container = _Container(model, api_key, token_delay_s, load_on_startup)
    app.state.model = model
    app.include_router(router)
    app.add_exception_handler(Exception, _unexpected)
    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory local_stack.container:app_from_env`; model from HYBRID_ROUTER_STRONG_MODEL."""
    from local_stack.weights import resolve_model

    path = resolve_model(os.environ.get("HYBRID_ROUTER_STRONG_MODEL"))
    return create_container_app(LlamaTextModel(path), api_key=os.environ.get("CONTAINER_API_KEY") or None)
