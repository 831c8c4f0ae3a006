"""Strong model behind a SageMaker real-time endpoint, called through boto3's `sagemaker-runtime` client.

Two request shapes, as the serving containers accept them:
  - "messages": the OpenAI messages shape, {"messages": [...], "max_tokens": n}; the container applies the
    model's own chat template (TGI >= 1.4, DJL/LMI, vLLM all take it on /invocations).
  - "tgi": the generate shape of TGI and of LMI's legacy schema, {"inputs": <prompt>, "parameters": {...}}; the
    prompt is rendered here, with the model's own chat template (Jinja, from its tokenizer_config.json) or a
    built-in one.
Which container serves the endpoint (`container`: tgi, lmi, vllm) decides what else differs: the stop parameter
of the generate shape, whether it takes the generate shape at all, and how it reports a failed generation
(LMI answers HTTP 200 with finish_reason "error"; any such body or stream event is an error, never an answer). An endpoint with inference components needs
InferenceComponentName on every call. tests/fixtures/containers/ holds each container's recorded contract.
Streaming uses InvokeEndpointWithResponseStream; the PayloadPart bytes carry either TGI/LMI token lines
(`data:{"token": {"text": ...}}`) or OpenAI chunks (`data: {"choices": [{"delta": ...}]}`), split anywhere.

The same code runs against AWS and against the local stand-in: pass endpoint_url, or set
AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME (boto3 reads it itself).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from hybrid_router.backends.base import BackendError, Completion, StreamResult, rejected_input, sampling_options

BodyFormat = Literal["tgi", "messages"]
Container = Literal["tgi", "lmi", "vllm"]

CHAT_TEMPLATES = ("chatml", "llama3", "mistral", "plain")
_TEMPLATE_STOPS = {"chatml": ["<|im_end|>"], "llama3": ["<|eot_id|>"], "mistral": [], "plain": []}
TGI_MAX_STOP_SEQUENCES = 4  # TGI's default --max-stop-sequences: a request with more is refused (422)


@dataclass(frozen=True)
class ContainerContract:
    """What one serving container takes on SageMaker's /invocations (tests/fixtures/containers/<name>.json)."""

    body_formats: tuple[BodyFormat, ...]  # the request shapes it accepts
    stop_key: str  # the generate shape's stop parameter
    max_stops: int | None  # how many stop strings it accepts in the generate shape


CONTAINERS: dict[str, ContainerContract] = {
    # TGI: /invocations takes the generate shape or the Messages API (router/src/sagemaker.rs).
    "tgi": ContainerContract(("messages", "tgi"), "stop", TGI_MAX_STOP_SEQUENCES),
    # DJL/LMI: chat completions when the body has "messages", else its schema with parameters.stop_sequences.
    "lmi": ContainerContract(("messages", "tgi"), "stop_sequences", None),
    # vLLM's SageMaker image: OpenAI requests only; "model" must be a served model name (404 otherwise).
    "vllm": ContainerContract(("messages",), "stop", None),
}


def container_contract(container: str, body_format: str) -> ContainerContract:
    """The container's contract; a body shape it does not accept is a configuration error, said at once."""
    contract = CONTAINERS.get(container)
    if contract is None:
        raise ValueError(f"unknown SageMaker container {container!r}; choose one of {', '.join(CONTAINERS)}")
    if body_format not in contract.body_formats:
        raise ValueError(
            f"the {container} container does not take the {body_format!r} body; use one of "
            f"{', '.join(contract.body_formats)}"
        )
    return contract


_AUTH_ERROR_CODES = {
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidClientTokenId",
}
_TGI_FINISH_REASONS = {"length": "length", "eos_token": "stop", "stop_sequence": "stop"}


def openai_finish_reason(reason: str | None) -> str:
    """OpenAI's name for a container's finish reason (LMI's chat choices say eos_token, TGI's details too)."""
    return _TGI_FINISH_REASONS.get(reason or "stop", reason or "stop")


_MODEL_ERROR_STATUS = re.compile(r"Received (?:client|server) error \((\d{3})\)")


def estimate_tokens(text: str) -> int:
    """Rough token count (about 4 characters a token) when the server does not report one."""
    return math.ceil(len(text) / 4) if text else 0


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


@dataclass(frozen=True)
class ModelChatTemplate:
    """A model's own chat template: its Jinja source and the end-of-sequence token it writes after a turn."""

    source: str
    eos_token: str = ""


def _token_text(token: Any) -> str:
    """tokenizer_config.json writes a special token as a string or as an AddedToken object {"content": ...}."""
    if isinstance(token, dict):
        return str(token.get("content") or "")
    return token if isinstance(token, str) else ""


def _template_source(chat_template: Any) -> str | None:
    """chat_template is one Jinja string, or a list of named ones ({"name", "template"}): take "default"."""
    if isinstance(chat_template, str):
        return chat_template
    if isinstance(chat_template, list):
        named = {t.get("name"): t.get("template") for t in chat_template if isinstance(t, dict)}
        found = named.get("default")
        return found if isinstance(found, str) else None
    return None


@lru_cache(maxsize=8)
def model_chat_template(template: str) -> ModelChatTemplate | None:
    """The model's own template from a setting: the text of its tokenizer_config.json (chat_template and eos_token),
    or bare Jinja source; None for a built-in name. Invalid ones raise ValueError with the reason."""
    stripped = template.strip()
    if stripped.startswith("{") and not stripped.startswith(("{{", "{%", "{#")):
        try:
            config = json.loads(stripped)
        except ValueError as exc:
            raise ValueError(f"the chat template looks like JSON but is not: {exc}") from exc
        source = _template_source(config.get("chat_template")) if isinstance(config, dict) else None
        if source is None:
            raise ValueError("a JSON chat template must be a tokenizer_config.json with a chat_template")
        found = ModelChatTemplate(source, _token_text(config.get("eos_token")))
    elif "{{" in template or "{%" in template:
        found = ModelChatTemplate(template)
    else:
        return None
    _compiled_template(found.source)
    return found


@lru_cache(maxsize=8)
def _compiled_template(source: str) -> Any:
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    # As transformers renders chat templates: sandboxed, whitespace as the template writes it.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    try:
        return env.from_string(source)
    except TemplateError as exc:
        raise ValueError(f"the chat template is not valid Jinja: {exc}") from exc


def validate_chat_template(template: str) -> str:
    """A built-in name, or the model's own template that compiles; anything else is refused with the reason."""
    if model_chat_template(template) is None and template not in CHAT_TEMPLATES:
        raise ValueError(
            f"unknown chat template {template!r}; choose one of {', '.join(CHAT_TEMPLATES)} or give the model's "
            "own (its tokenizer_config.json, or the Jinja chat_template in it)"
        )
    return template


def _render_jinja(messages: list[dict], template: ModelChatTemplate) -> str:
    from jinja2 import TemplateError

    turns = [{"role": m["role"], "content": message_text(m)} for m in messages]
    try:
        # bos_token is empty: TGI and LMI tokenize `inputs` with the model's special tokens, BOS included.
        return _compiled_template(template.source).render(
            messages=turns, add_generation_prompt=True, bos_token="", eos_token=template.eos_token
        )
    except TemplateError as exc:
        raise BackendError(
            f"the model's chat template refused these messages: {exc}", cause="strong_rejected_input", status_code=400
        ) from exc


def _render_mistral(messages: list[dict]) -> str:
    """Mistral-Instruct's [INST] format; a system message goes before the first user turn (it has no role)."""
    system = "\n\n".join(message_text(m) for m in messages if m["role"] == "system")
    out = ""
    for m in (m for m in messages if m["role"] != "system"):
        if m["role"] == "user":
            text = f"{system}\n\n{message_text(m)}" if system else message_text(m)
            system = ""
            out += f"[INST] {text} [/INST]"
        else:
            out += f" {message_text(m)}</s>"
    return out


def render_chat_prompt(messages: list[dict], template: str = "chatml") -> str:
    """Render OpenAI-style messages into one prompt string, ending where the assistant's answer begins."""
    own = model_chat_template(template)
    if own is not None:
        return _render_jinja(messages, own)
    if template == "mistral":
        return _render_mistral(messages)
    if template == "chatml":
        turns = [f"<|im_start|>{m['role']}\n{message_text(m)}<|im_end|>\n" for m in messages]
        return "".join(turns) + "<|im_start|>assistant\n"
    if template == "llama3":
        turns = [f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{message_text(m)}<|eot_id|>" for m in messages]
        return "<|begin_of_text|>" + "".join(turns) + "<|start_header_id|>assistant<|end_header_id|>\n\n"
    if template == "plain":
        return "\n\n".join(f"{m['role']}: {message_text(m)}" for m in messages) + "\n\nassistant:"
    raise ValueError(f"unknown chat template {template!r}; choose one of {', '.join(CHAT_TEMPLATES)}")


def tgi_stops(stop: list[str] | None, chat_template: str, max_stops: int | None = TGI_MAX_STOP_SEQUENCES) -> list[str]:
    """The caller's stops, then the template's end-of-turn marker if the container's limit leaves room for it (the
    model's own end-of-sequence token ends the turn anyway; the marker only guards models whose EOS differs)."""
    stops = list(stop or [])
    extra = [s for s in _TEMPLATE_STOPS.get(chat_template, []) if s not in stops]
    room = len(extra) if max_stops is None else max(max_stops - len(stops), 0)
    return stops + extra[:room]


def build_request_body(
    messages: list[dict],
    body_format: BodyFormat,
    max_tokens: int,
    temperature: float,
    stream: bool,
    chat_template: str = "chatml",
    model: str | None = None,
    stop: list[str] | None = None,
    top_p: float | None = None,
    container: str = "tgi",
) -> dict[str, Any]:
    contract = container_contract(container, body_format)
    if body_format == "tgi":
        parameters: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "details": True,
            "return_full_text": False,
            contract.stop_key: tgi_stops(stop, chat_template, contract.max_stops),
        }
        if top_p is not None and top_p < 1.0:  # TGI accepts 0 < top_p < 1 only
            parameters["top_p"] = top_p
        if temperature > 0:  # TGI rejects temperature 0; greedy decoding is do_sample=false.
            parameters.update(do_sample=True, temperature=temperature)
        else:
            parameters["do_sample"] = False
        if not stream and container == "tgi":
            parameters["decoder_input_details"] = True  # prefill tokens: the exact prompt token count
        body: dict[str, Any] = {"inputs": render_chat_prompt(messages, chat_template), "parameters": parameters}
        if stream:
            body["stream"] = True
        return body
    if body_format == "messages":
        body = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
            **sampling_options(stop, top_p),
        }
        if model:
            body["model"] = model
        if stream and container != "lmi":  # LMI's chunks carry no usage, and its schema has no stream_options
            body["stream_options"] = {"include_usage": True}
        return body
    raise ValueError(f"unknown body_format {body_format!r}; use 'tgi' or 'messages'")


class _StopTrimmer:
    """Cuts streamed text at the first stop string; holds back only a tail that could start one."""

    def __init__(self, stops: Iterable[str]):
        self.stops = [s for s in stops if s]
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        if self.stopped:
            return ""
        self.pending += text
        for stop in self.stops:
            index = self.pending.find(stop)
            if index >= 0:
                self.stopped = True
                out, self.pending = self.pending[:index], ""
                return out
        hold = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(self.pending)), 0, -1):
                if self.pending.endswith(stop[:size]):
                    hold = max(hold, size)
                    break
        out = self.pending[: len(self.pending) - hold]
        self.pending = self.pending[len(self.pending) - hold :]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out


def _trim_stops(text: str, stops: Iterable[str]) -> str:
    trimmer = _StopTrimmer(stops)
    return trimmer.feed(text) + trimmer.flush()


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("error_msg") or error.get("error") or error)
    return str(error)


def failure_of(data: dict) -> str | None:
    """What a container said went wrong, in a body or stream event it sent with HTTP 200, or None.

    TGI: {"error": ..., "error_type": ...}; vLLM: {"error": {"message", "type", "code"}} (older: {"object": "error",
    "message"}); LMI: {"error": "...", "code": 400, "generated_text": null} or a finish_reason of "error" (in
    details, or in a chat choice) with an empty answer."""
    if data.get("object") == "error":
        return _error_text(data.get("message") or data)
    if data.get("error"):
        return _error_text(data["error"])
    details = data.get("details")
    if isinstance(details, dict) and details.get("finish_reason") == "error":
        return "generation failed (finish_reason: error)"
    for choice in data.get("choices") or []:
        if isinstance(choice, dict) and choice.get("finish_reason") == "error":
            return "generation failed (finish_reason: error)"
    return None


def parse_response_body(raw: bytes, stops: Iterable[str] = ()) -> tuple[str, str, int | None, int | None]:
    """(text, finish_reason, prompt_tokens or None, completion_tokens or None) from a TGI/LMI or OpenAI body."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BackendError(
            f"SageMaker endpoint returned a body that is not JSON: {raw[:200]!r}", cause="strong_error"
        ) from exc
    if isinstance(data, list):
        if not data:
            raise BackendError("SageMaker endpoint returned an empty list", cause="strong_error")
        data = data[0]
    if not isinstance(data, dict):
        raise BackendError(f"SageMaker endpoint returned an unexpected body: {raw[:200]!r}", cause="strong_error")
    failure = failure_of(data)
    if failure is not None:
        raise BackendError(f"SageMaker model error: {failure}", cause="strong_error")
    if "choices" in data:
        choice = data["choices"][0]
        text = message_text(choice.get("message") or {}) or choice.get("text", "")
        usage = data.get("usage") or {}
        finish = openai_finish_reason(choice.get("finish_reason"))
        return (text, finish, usage.get("prompt_tokens"), usage.get("completion_tokens"))
    if "generated_text" in data:
        details = data.get("details") or {}
        prefill = details.get("prefill")
        finish = _TGI_FINISH_REASONS.get(details.get("finish_reason", ""), "stop")
        return (
            _trim_stops(data["generated_text"], stops),
            finish,
            len(prefill) if prefill else None,
            details.get("generated_tokens"),
        )
    raise BackendError(
        f"SageMaker endpoint returned a body with neither 'generated_text' nor 'choices': {raw[:200]!r}",
        cause="strong_error",
    )


class StreamLineDecoder:
    """Turns PayloadPart byte chunks (split anywhere) into text pieces, and remembers usage and finish reason."""

    def __init__(self, stops: Iterable[str] = ()):
        self.buffer = b""
        self.trimmer = _StopTrimmer(stops)
        self.finish_reason = "stop"
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.tokens_seen = 0

    def feed(self, chunk: bytes) -> Iterator[str]:
        self.buffer += chunk
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            yield from self._line(line)

    def close(self) -> Iterator[str]:
        if self.buffer.strip():
            line, self.buffer = self.buffer, b""
            yield from self._line(line)
        tail = self.trimmer.flush()
        if tail:
            yield tail

    def _line(self, line: bytes) -> Iterator[str]:
        line = line.strip()
        if line.startswith(b"data:"):
            line = line[5:].strip()
        if not line or line == b"[DONE]" or line.startswith((b"event:", b"id:", b"retry:", b":")):
            return
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise BackendError(
                f"SageMaker stream sent a line that is not JSON: {line[:200]!r}", cause="strong_stream_broken"
            ) from exc
        if not isinstance(event, dict):
            return
        failure = failure_of(event)
        if failure is not None:
            raise BackendError(f"SageMaker model error mid-stream: {failure}", cause="strong_stream_broken")
        text = ""
        if "token" in event:  # TGI / LMI token streaming
            token = event["token"] or {}
            self.tokens_seen += 1
            if not token.get("special"):
                text = token.get("text") or ""
            details = event.get("details") or {}
            if details:
                self.finish_reason = _TGI_FINISH_REASONS.get(details.get("finish_reason", ""), "stop")
                self.completion_tokens = details.get("generated_tokens", self.completion_tokens)
        elif "choices" in event:  # OpenAI chunks
            for choice in event["choices"]:
                delta = choice.get("delta") or {}
                text += delta.get("content") or choice.get("text") or ""
                if choice.get("finish_reason"):
                    self.finish_reason = openai_finish_reason(choice["finish_reason"])
            if text:
                self.tokens_seen += 1
        usage = event.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens", self.prompt_tokens)
            self.completion_tokens = usage.get("completion_tokens", self.completion_tokens)
        if text:
            out = self.trimmer.feed(text)
            if out:
                yield out


def invoke_arguments(
    endpoint_name: str, body: dict[str, Any], decision_id: str | None, inference_component: str | None
) -> dict[str, Any]:
    """The arguments of InvokeEndpoint and InvokeEndpointWithResponseStream alike. InferenceId ties the endpoint's
    own logs (data capture) to the decision record; an endpoint with inference components refuses a call that
    does not name one."""
    arguments: dict[str, Any] = {
        "EndpointName": endpoint_name,
        "ContentType": "application/json",
        "Accept": "application/json",
        "Body": json.dumps(body).encode(),
    }
    if decision_id:
        arguments["InferenceId"] = decision_id
    if inference_component:
        arguments["InferenceComponentName"] = inference_component
    return arguments


class SageMakerBackend:
    """ChatBackend over a SageMaker real-time endpoint (InvokeEndpoint / InvokeEndpointWithResponseStream)."""

    def __init__(
        self,
        endpoint_name: str,
        region: str | None = None,
        endpoint_url: str | None = None,
        body_format: BodyFormat = "tgi",
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
        max_attempts: int = 1,
        chat_template: str = "chatml",
        model_name: str | None = None,
        client: Any = None,
        container: Container = "tgi",
        served_model_name: str | None = None,
        inference_component: str | None = None,
    ):
        """model_name: what decision records call the model. served_model_name: what the container calls it, sent
        as the body's "model" (vLLM answers 404 to any other name; omitted, the container serves its own)."""
        if body_format not in ("tgi", "messages"):
            raise ValueError(f"unknown body_format {body_format!r}; use 'tgi' or 'messages'")
        container_contract(container, body_format)
        validate_chat_template(chat_template)
        self.container: Container = container
        self.served_model_name = served_model_name or None
        self.inference_component = inference_component or None
        self.endpoint_name = endpoint_name
        self.region = region
        self.endpoint_url = endpoint_url
        self.body_format: BodyFormat = body_format
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.max_attempts = max_attempts
        self.chat_template = chat_template
        self.model_name = model_name or endpoint_name
        self.name = f"sagemaker:{endpoint_name}"
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                read_timeout=self.timeout_s,
                connect_timeout=self.connect_timeout_s,
                retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            )
            session = boto3.session.Session()
            region = (
                self.region
                or session.region_name
                or ("us-east-1" if self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME") else None)
            )
            if region is None:
                raise BackendError(
                    "No AWS region for the SageMaker runtime client: set AWS_REGION or pass region=",
                    cause="strong_error",
                    status_code=500,
                )
            self._client = session.client(
                "sagemaker-runtime", region_name=region, endpoint_url=self.endpoint_url, config=config
            )
        return self._client

    def _stops(self, stop: list[str] | None = None) -> list[str]:
        template = _TEMPLATE_STOPS.get(self.chat_template, []) if self.body_format == "tgi" else []
        return template + list(stop or [])

    def _body(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stream: bool,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> dict[str, Any]:
        return build_request_body(
            messages,
            self.body_format,
            max_tokens,
            temperature,
            stream,
            chat_template=self.chat_template,
            model=self.served_model_name,
            stop=stop,
            top_p=top_p,
            container=self.container,
        )

    def _prompt_estimate(self, messages: list[dict]) -> int:
        if self.body_format == "tgi":
            return estimate_tokens(render_chat_prompt(messages, self.chat_template))
        return estimate_tokens("".join(message_text(m) for m in messages)) + 4 * len(messages)

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Completion:
        body = self._body(messages, max_tokens, temperature, stream=False, stop=stop, top_p=top_p)
        try:
            response = self.client.invoke_endpoint(
                **invoke_arguments(self.endpoint_name, body, decision_id, self.inference_component)
            )
            raw = response["Body"].read()
        except BackendError:
            raise
        except Exception as exc:  # botocore/urllib3 errors, mapped to causes
            raise self._translate(exc, mid_stream=False) from exc
        text, finish, prompt_tokens, completion_tokens = parse_response_body(raw, self._stops(stop))
        usage = (
            prompt_tokens if prompt_tokens is not None else self._prompt_estimate(messages),
            completion_tokens if completion_tokens is not None else estimate_tokens(text),
        )
        return Completion(
            text=text, model=self.model_name, prompt_tokens=usage[0], completion_tokens=usage[1], finish_reason=finish
        )

    def stream(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generator[str, None, StreamResult]:
        body = self._body(messages, max_tokens, temperature, stream=True, stop=stop, top_p=top_p)
        decoder = StreamLineDecoder(self._stops(stop))
        try:
            response = self.client.invoke_endpoint_with_response_stream(
                **invoke_arguments(self.endpoint_name, body, decision_id, self.inference_component)
            )
        except BackendError:
            raise
        except Exception as exc:
            raise self._translate(exc, mid_stream=False) from exc
        pieces: list[str] = []
        event_stream = response["Body"]
        try:
            for event in event_stream:
                part = event.get("PayloadPart")
                if part is None:
                    continue
                for piece in decoder.feed(part.get("Bytes", b"")):
                    pieces.append(piece)
                    yield piece
            for piece in decoder.close():
                pieces.append(piece)
                yield piece
        except BackendError:
            raise
        except Exception as exc:
            raise self._translate(exc, mid_stream=True) from exc
        finally:
            event_stream.close()
        text = "".join(pieces)
        return StreamResult(
            decoder.prompt_tokens if decoder.prompt_tokens is not None else self._prompt_estimate(messages),
            decoder.completion_tokens
            if decoder.completion_tokens is not None
            else (decoder.tokens_seen or estimate_tokens(text)),
            decoder.finish_reason,
        )

    def _translate(self, exc: Exception, mid_stream: bool) -> BackendError:
        from botocore import exceptions as boto_errors
        from urllib3.exceptions import TimeoutError as _Urllib3Timeout  # a stalled stream, read by urllib3

        where = f"SageMaker endpoint {self.endpoint_name!r}"
        if isinstance(exc, (boto_errors.ReadTimeoutError, boto_errors.ConnectTimeoutError, _Urllib3Timeout)):
            return BackendError(
                f"{where} timed out after {self.timeout_s:g}s: {exc}", cause="strong_timeout", status_code=504
            )
        if isinstance(exc, (boto_errors.NoCredentialsError, boto_errors.PartialCredentialsError)):
            return BackendError(
                f"No usable AWS credentials to call {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                f"AWS_PROFILE, or run with an IAM role ({exc})",
                cause="strong_auth",
                status_code=502,
            )
        if isinstance(exc, boto_errors.EventStreamError):
            code = exc.response.get("Error", {}).get("Code", "")
            message = exc.response.get("Error", {}).get("Message", str(exc))
            return BackendError(f"{where} stream failed ({code}): {message}", cause="strong_stream_broken")
        if isinstance(exc, boto_errors.ClientError):
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = error.get("Message") or str(exc)
            if code in _AUTH_ERROR_CODES or status in (401, 403):
                return BackendError(f"{where} refused the credentials ({code}): {message}", cause="strong_auth")
            if code == "ModelError":  # the container answered an error: its status and body ride along
                found = _MODEL_ERROR_STATUS.search(message)
                original = exc.response.get("OriginalStatusCode") or (found.group(1) if found else 0)
                rejected = rejected_input(
                    where,
                    int(original) if str(original).isdigit() else None,
                    exc.response.get("OriginalMessage") or message,
                )
                if rejected is not None:
                    return rejected
            return BackendError(f"{where} failed ({code or status}): {message}", cause="strong_error")
        if isinstance(exc, boto_errors.EndpointConnectionError) and not mid_stream:
            return BackendError(f"{where} is unreachable: {exc}", cause="strong_unreachable", status_code=503)
        if mid_stream:
            return BackendError(f"{where} stream broke off: {exc}", cause="strong_stream_broken")
        if isinstance(exc, boto_errors.ConnectionClosedError):
            return BackendError(f"{where} closed the connection: {exc}", cause="strong_error")
        return BackendError(f"{where} call failed: {type(exc).__name__}: {exc}", cause="strong_error")
