"""A SageMaker bring-your-own-container model server with a real llama.cpp model behind it.

The container contract: `GET /ping` (200 when ready) and `POST /invocations`. Bodies come in two shapes:
  - TGI/LMI: {"inputs": "<rendered prompt>", "parameters": {"max_new_tokens", "temperature", "details", ...},
    "stream": bool}; answers [{"generated_text", "details"}] or, streaming, `data:{"token": {...}}` lines.
  - OpenAI messages: {"messages": [...], "max_tokens", "stream"}; answers a chat.completion or SSE chunks.
Streaming is chosen by the body's "stream": true (TGI's convention on SageMaker), answered with chunked
transfer encoding, which the runtime turns into PayloadPart events for InvokeEndpointWithResponseStream.
The same app also serves `POST /v1/chat/completions` and `GET /v1/models`, so it doubles as a plain
OpenAI-compatible server (optionally behind an API key).
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hybrid_router.openai_schema import ChatCompletionRequest, completion_chunk, error_body
from hybrid_router.ulid import new_ulid
from local_stack.model import Generation, LlamaTextModel, Piece

MAX_NEW_TOKENS = 4096
_TGI_FINISH = {"length": "length", "stop": "eos_token"}


class TextModel(Protocol):
    name: str
    loaded: bool

    def load(self) -> None: ...
    def prompt_tokens(self, text: str) -> list[tuple[int, str]]: ...
    def stream_prompt(self, prompt: str, max_tokens: int, temperature: float,
                      stop: list[str] | None = None) -> Iterator[Piece]: ...
    def stream_chat(self, messages: list[dict], max_tokens: int, temperature: float,
                    stop: list[str] | None = None, top_p: float | None = None) -> Iterator[Piece]: ...
    def complete_prompt(self, prompt: str, max_tokens: int, temperature: float,
                        stop: list[str] | None = None) -> Generation: ...
    def complete_chat(self, messages: list[dict], max_tokens: int, temperature: float,
                      stop: list[str] | None = None, top_p: float | None = None) -> Generation: ...


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


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    detail = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return f"invalid request body: {detail}"


def _sse(event: dict[str, Any], space: bool = True) -> bytes:
    return (b"data: " if space else b"data:") + json.dumps(event).encode("utf-8") + b"\n\n"


def _tgi_response(model: TextModel, request: TgiRequest) -> dict[str, Any]:
    params = request.parameters
    result = model.complete_prompt(request.inputs, params.max_new_tokens, request.sampling_temperature(),
                                   params.stop)
    text = (request.inputs + result.text) if params.return_full_text else result.text
    out: dict[str, Any] = {"generated_text": text}
    if params.details or params.decoder_input_details:
        details: dict[str, Any] = {"finish_reason": _TGI_FINISH.get(result.finish_reason, "eos_token"),
                                   "generated_tokens": result.completion_tokens, "seed": None, "tokens": []}
        if params.decoder_input_details:
            details["prefill"] = [{"id": i, "text": t, "logprob": None} for i, t in model.prompt_tokens(request.inputs)]
        out["details"] = details
    return out


def _tgi_stream(model: TextModel, request: TgiRequest) -> Iterator[bytes]:
    params = request.parameters
    pieces: list[str] = []
    finish = "stop"
    for piece in model.stream_prompt(request.inputs, params.max_new_tokens, request.sampling_temperature(),
                                     params.stop):
        if piece.finish_reason:
            finish = piece.finish_reason
        if piece.text:
            pieces.append(piece.text)
            token = {"id": None, "text": piece.text, "logprob": None, "special": False}
            yield _sse({"index": len(pieces), "token": token, "generated_text": None, "details": None}, space=False)
    # TGI closes with the end token (special), carrying the whole text and the details.
    last = {"id": None, "text": "", "logprob": None, "special": True}
    details = {"finish_reason": _TGI_FINISH.get(finish, "eos_token"), "generated_tokens": len(pieces), "seed": None}
    yield _sse({"index": len(pieces) + 1, "token": last, "generated_text": "".join(pieces), "details": details},
               space=False)


def _chat_response(model: TextModel, request: ChatCompletionRequest) -> dict[str, Any]:
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    result = model.complete_chat(messages, request.token_limit(256), request.temperature or 0.0,
                                 stop=request.stop_list(), top_p=request.top_p)
    return {
        "id": f"chatcmpl-{new_ulid()}",
        "object": "chat.completion",
        "created": 0,
        "model": model.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason}],
        "usage": {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                  "total_tokens": result.prompt_tokens + result.completion_tokens},
    }


def _chat_stream(model: TextModel, request: ChatCompletionRequest) -> Iterator[bytes]:
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    completion_id = f"chatcmpl-{new_ulid()}"
    yield _sse(completion_chunk(completion_id, model.name, {"role": "assistant", "content": ""}))
    count = 0
    finish = "stop"
    prompt_tokens = 0
    for piece in model.stream_chat(messages, request.token_limit(256), request.temperature or 0.0,
                                   stop=request.stop_list(), top_p=request.top_p):
        if piece.finish_reason:
            finish = piece.finish_reason
            prompt_tokens = piece.prompt_tokens or 0
        if piece.text:
            count += 1
            yield _sse(completion_chunk(completion_id, model.name, {"content": piece.text}))
    yield _sse(completion_chunk(completion_id, model.name, {}, finish_reason=finish))
    options = getattr(request, "stream_options", None) or {}
    if isinstance(options, dict) and options.get("include_usage"):
        yield _sse({"id": completion_id, "object": "chat.completion.chunk", "created": 0, "model": model.name,
                    "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": count,
                                             "total_tokens": prompt_tokens + count}})
    yield b"data: [DONE]\n\n"


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        return None


def create_container_app(model: TextModel, api_key: str | None = None, load_on_startup: bool = True) -> FastAPI:
    """The BYOC model server app. `api_key` guards only the /v1 OpenAI routes (SageMaker never sends one)."""
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load_on_startup:
            model.load()
        yield

    app = FastAPI(title="hybrid-router stand-in SageMaker container", docs_url=None, redoc_url=None,
                  lifespan=lifespan)
    app.state.model = model

    def answer_chat(body: Any) -> Response:
        try:
            request = ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            return _error(400, _validation_message(exc))
        if request.stream:
            return StreamingResponse(_chat_stream(model, request), media_type="text/event-stream")
        return JSONResponse(_chat_response(model, request))

    def answer_tgi(body: Any) -> Response:
        try:
            request = TgiRequest.model_validate(body)
        except ValidationError as exc:
            return _error(400, _validation_message(exc))
        if request.stream:
            return StreamingResponse(_tgi_stream(model, request), media_type="text/event-stream")
        return JSONResponse([_tgi_response(model, request)])

    @app.get("/ping")
    def ping() -> Response:
        return Response(status_code=200 if model.loaded else 503)

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        if "messages" in body:
            return answer_chat(body)
        if "inputs" in body:
            return answer_tgi(body)
        return _error(400, "request body needs 'inputs' (TGI/LMI shape) or 'messages' (OpenAI shape)")

    def authorized(request: Request) -> bool:
        if api_key is None:
            return True
        bearer = request.headers.get("authorization", "")
        return bearer == f"Bearer {api_key}" or request.headers.get("x-api-key") == api_key

    @app.get("/v1/models")
    def models(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong API key", "authentication_error")
        return JSONResponse({"object": "list", "data": [{"id": model.name, "object": "model", "owned_by": "local"}]})

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        if not authorized(request):
            return _error(401, "missing or wrong API key", "authentication_error")
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        return answer_chat(body)

    return app


def app_from_env() -> FastAPI:
    """`uvicorn --factory local_stack.container:app_from_env`; model from HYBRID_ROUTER_STRONG_MODEL."""
    from local_stack.weights import resolve_model

    path = resolve_model(os.environ.get("HYBRID_ROUTER_STRONG_MODEL"))
    return create_container_app(LlamaTextModel(path), api_key=os.environ.get("CONTAINER_API_KEY") or None)
