"""OpenAI chat-completions request/response models, shared by the edge server and the cloud API."""

from __future__ import annotations

import functools
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator, model_validator
from pydantic_core import PydanticCustomError

MAX_PROMPT_CHARS = 1_000_000
MAX_TOKENS_LIMIT = 32768  # the largest max_tokens a request (or the edge CLI's --max-tokens) may ask for
MAX_STOP_SEQUENCES = 4  # OpenAI's limit on `stop`
# Unicode's stream-safe text format (UAX #15) allows at most 30 combining marks (non-starters) in a row; longer runs
# are no writing system's, and each mark is a token or two: "e" + 1,000 accents is 2,000 tokens in 1,001 characters.
MAX_COMBINING_RUN = 30


def is_text(value: str) -> bool:
    """False for a str that cannot be UTF-8 encoded (it holds a lone \\ud800-\\udfff surrogate): no model, log or
    store can take it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(value: str) -> str:
    """`value` with anything that cannot be UTF-8 encoded written as a \\u escape: safe in any response."""
    return value if is_text(value) else value.encode("utf-8", "backslashreplace").decode("utf-8")


def unencodable_path(value: Any) -> str | None:
    """Where, in parsed JSON (dicts, lists, strings, numbers), the first string or key that is not text is, as a
    dotted path ("stop.1", "messages.0.content"; "" for the value itself); None when every string is text."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not is_text(item):
                return ".".join(path)
        elif isinstance(item, dict):
            for key, child in reversed(list(item.items())):
                name = printable(str(key))
                if isinstance(key, str) and not is_text(key):
                    return ".".join((*path, name))
                stack.append(((*path, name), child))
        elif isinstance(item, (list, tuple)):
            stack.extend(((*path, str(index)), child) for index, child in reversed(list(enumerate(item))))
    return None


UNENCODABLE = "{param} holds an unpaired UTF-16 surrogate, which is not text"


@functools.cache
def _combining_runs() -> re.Pattern[str]:
    """Runs of more than MAX_COMBINING_RUN combining marks; the class is written as ranges (188 of them for the
    912 marks), which the regular expression engine matches about three times faster than the marks one by one."""
    ranges: list[list[int]] = []
    for code in (c for c in range(sys.maxunicode + 1) if unicodedata.combining(chr(c))):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    marks = "".join(
        re.escape(chr(first)) + (f"-{re.escape(chr(last))}" if last > first else "") for first, last in ranges
    )
    return re.compile(f"[{marks}]{{{MAX_COMBINING_RUN + 1},}}")


def longest_combining_run(text: str) -> int:
    """The longest run of combining marks in `text` if it is over MAX_COMBINING_RUN, else 0 (ASCII costs nothing)."""
    if text.isascii():
        return 0
    return max((len(match.group()) for match in _combining_runs().finditer(text)), default=0)


class TextOnly(BaseModel):
    """A request body whose every string (and key) must be text: a lone surrogate anywhere is a validation error
    naming where it is (`ctx.param`), before any field is read."""

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: Any) -> Any:
        where = unencodable_path(data)
        if where is not None:
            raise PydanticCustomError("unencodable_text", UNENCODABLE, {"param": where or "body"})
        return data


@dataclass(frozen=True)
class InputProblem:
    """Why a well-formed request cannot be served (`code` and `param` as in an OpenAI error body)."""

    code: str
    param: str
    message: str
    too_large: bool = False  # HTTP 413 rather than the surface's usual 400/422


PROMPT_ROLES = ("user", "system", "developer")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if isinstance(part, dict))
        return self.content or ""


class ChatCompletionRequest(TextOnly):
    model_config = ConfigDict(extra="allow")

    model: str = "router"
    messages: list[ChatMessage] = Field(min_length=1)
    # Strict, as in OpenAI's API: "yes" or 1 is not a bool, true or "4" not a number (an int is a float).
    stream: StrictBool = False
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(default=None, gt=0.0, le=1.0)
    n: StrictInt | None = None
    stop: str | list[str] | None = Field(default=None, description="up to 4 stop sequences, as in OpenAI's API")

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOP_SEQUENCES:
            raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed, got {len(value)}")
        return value

    def token_limit(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def stop_list(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def input_problem(self) -> InputProblem | None:
        """What validation lets through but no model here can honour; both servers refuse it before routing, so
        nothing is charged or logged: n > 1, function calling, non-text content, an over-long prompt, and a run of
        more than MAX_COMBINING_RUN combining marks (two tokens a character: a short prompt that fills a context).
        Text that is not text (a lone UTF-16 surrogate in any field) fails validation already (TextOnly)."""
        extra = self.model_extra or {}
        if self.n not in (None, 1):  # one answer per request; never silently fewer than asked for
            return InputProblem(
                "unsupported_value", "n", f"n={self.n!r} is not supported: one answer per request (n=1)"
            )
        for name in ("tools", "functions"):
            if extra.get(name):  # an empty list is harmless; a tool list would be silently ignored
                return InputProblem(
                    "unsupported_value",
                    name,
                    f"'{name}' (function calling) is not supported: the router's models answer with text only",
                )
        for index, message in enumerate(self.messages):
            if isinstance(message.content, list):
                for part in message.content:
                    kind = part.get("type", "text") if isinstance(part, dict) else type(part).__name__
                    if kind != "text":
                        return InputProblem(
                            "unsupported_value",
                            f"messages.{index}.content",
                            f"content parts of type {kind!r} are not supported: text only",
                        )
        unsupported = _unsupported_output_option(extra)
        if unsupported is not None:
            return unsupported
        if not any(m.role in PROMPT_ROLES and m.text() for m in self.messages):
            return InputProblem(
                "invalid_value", "messages", "the messages hold no user or system text: there is nothing to answer"
            )
        if sum(len(m.text()) for m in self.messages) > MAX_PROMPT_CHARS:
            return InputProblem(
                "prompt_too_large",
                "messages",
                f"the prompt is longer than {MAX_PROMPT_CHARS} characters",
                too_large=True,
            )
        for index, message in enumerate(self.messages):
            run = longest_combining_run(message.text())
            if run:
                return InputProblem(
                    "invalid_value",
                    f"messages.{index}.content",
                    f"messages.{index}.content holds {run} combining marks in a row; at most "
                    f"{MAX_COMBINING_RUN} may follow one character (Unicode stream-safe text)",
                )
        return None

    def include_usage(self) -> bool:
        """OpenAI's `stream_options.include_usage`: a streamed answer ends with a chunk that carries its usage."""
        options = (self.model_extra or {}).get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def last_user_text(self) -> str:
        """What the router scores: the last user turn (RouteLLM routes on the user prompt)."""
        for message in reversed(self.messages):
            if message.role == "user":
                return message.text()
        return self.messages[-1].text()


def _unsupported_output_option(extra: dict[str, Any]) -> InputProblem | None:
    """OpenAI output options no backend here honours yet: refused by name rather than silently dropped."""
    if extra.get("logprobs") not in (None, False) or extra.get("top_logprobs") not in (None, 0):
        name = "logprobs" if extra.get("logprobs") not in (None, False) else "top_logprobs"
        return InputProblem(
            "unsupported_value", name, f"'{name}' is not supported: answers carry no token log-probabilities"
        )
    response_format = extra.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        return InputProblem(
            "unsupported_value",
            "response_format",
            '\'response_format\' other than {"type": "text"} is not supported: '
            "structured output (json_object, json_schema) is not enforced",
        )
    return None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(BaseModel):
    index: int = 0
    message: dict[str, Any]
    finish_reason: str | None = "stop"


class CascadeInfo(BaseModel):
    """Cascade mode: the local draft made first, kept or escalated."""

    confidence: float
    escalated: bool
    draft_tokens: int
    draft_latency_ms: float


class Routing(BaseModel):
    """The `routing` block of a chat answer (plain: in the response; streamed: in the first and the last chunk)."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str
    route: Literal["weak", "strong"]  # the side that answers
    reason: str  # routed, forced, budget:<cap>, fallback:<cause>, cascade:<outcome>, privacy:<kind>, ...
    model: str  # the model that answers
    decided_route: Literal["weak", "strong"] | None = (
        None  # what the router chose, when the other side answers by design
    )
    score: float
    threshold: float
    router_id: str
    router_version: str
    router_latency_ms: float
    privacy_kinds: list[str] = []  # kinds of private data found, never their values
    conversation_id: str | None = None  # the conversation this message belongs to (given or derived; never text)
    quality_target: float | None = None  # the quality target that set the threshold, when one did
    quality_confidence: float | None = None
    # Once the decision record exists (a plain answer; a stream's last chunk):
    cost_usd: float | None = None
    strong_cost_usd: float | None = None
    saving_usd: float | None = None
    generation_latency_ms: float | None = None
    cached_from: str | None = None  # served again from the answer cache: the decision that paid for the answer
    cascade: CascadeInfo | None = None
    # The cloud could not store the record of an answer it served: re-send it to POST /v1/decisions.
    unstored_record: dict[str, Any] | None = None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[Choice]
    usage: Usage
    # hybrid-router's own field: the decision behind this answer (OpenAI clients ignore it).
    routing: Routing | None = None


def completion_chunk(
    completion_id: str, model: str, delta: dict[str, Any], finish_reason: str | None = None, created: int | None = None
) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created or int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def usage_chunk(completion_id: str, model: str, record: Any, created: int | None = None) -> dict[str, Any]:
    """The last chunk of a stream asked for `stream_options.include_usage`: no choices, the answer's usage
    (from its decision record: the tokens the model reported, or its estimate when none were)."""
    chunk = completion_chunk(completion_id, model, {}, created=created)
    chunk["choices"] = []
    chunk["usage"] = Usage(
        prompt_tokens=record.prompt_tokens,
        completion_tokens=record.completion_tokens,
        total_tokens=record.prompt_tokens + record.completion_tokens,
    ).model_dump()
    return chunk


def error_body(
    message: str, error_type: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI-style error body: {"error": {"message", "type", "param", "code"}}. A message or param quoting the
    caller's input is made printable, so the error itself can always be sent."""
    return {
        "error": {
            "message": printable(message),
            "type": error_type,
            "param": None if param is None else printable(param),
            "code": code,
        }
    }
