"""Strong model behind any OpenAI-compatible URL (our cloud API, vLLM, TGI's Messages API, a hosted provider)."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any, Literal

import httpx

from hybrid_router.backends.base import BackendError, Completion, StreamResult, rejected_input, sampling_options
from hybrid_router.backends.sagemaker import estimate_tokens, message_text

ApiKeyHeader = Literal["authorization", "x-api-key"]


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if isinstance(error, str):
            return error
        for key in ("message", "detail", "Message"):
            if body.get(key):
                return str(body[key])
    return json.dumps(body)[:500]


def _reported_usage(usage: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens from an OpenAI `usage` object, or None when it does not report both."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, bool) or isinstance(completion, bool):
        return None
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return prompt, completion
    return None


class OpenAICompatBackend:
    """ChatBackend over POST {base_url}/chat/completions (base_url usually ends in /v1)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str = "default",
        timeout_s: float = 60.0,
        api_key_header: ApiKeyHeader = "authorization",
        connect_timeout_s: float = 5.0,
        extra_body: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ):
        if api_key_header not in ("authorization", "x-api-key"):
            raise ValueError("api_key_header must be 'authorization' or 'x-api-key'")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.name = f"openai:{model}"
        self.extra_body = dict(extra_body or {})
        headers = {"accept": "application/json"}
        if api_key:
            if api_key_header == "authorization":
                headers["authorization"] = f"Bearer {api_key}"
            else:
                headers["x-api-key"] = api_key
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )

    def close(self) -> None:
        self._http.close()

    def _payload(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stream: bool,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": stream,
            **self.extra_body,
            **sampling_options(stop, top_p),
        }
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _prompt_estimate(self, messages: list[dict]) -> int:
        return estimate_tokens("".join(message_text(m) for m in messages)) + 4 * len(messages)

    def _check(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        if not response.is_closed:
            response.read()
        message = f"{self.base_url} answered {response.status_code}: {_error_message(response)}"
        if response.status_code in (401, 403):
            raise BackendError(message, cause="strong_auth", status_code=502)
        if response.status_code in (408, 504):
            raise BackendError(message, cause="strong_timeout", status_code=504)
        rejected = rejected_input(self.base_url, response.status_code, response.content)
        if rejected is not None:
            raise rejected
        raise BackendError(message, cause="strong_error", status_code=502)

    def _translate(self, exc: Exception, mid_stream: bool) -> BackendError:
        if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.PoolTimeout):
            return BackendError(
                f"{self.base_url} timed out after {self.timeout_s:g}s ({type(exc).__name__})",
                cause="strong_timeout",
                status_code=504,
            )
        if isinstance(exc, httpx.ConnectError):
            return BackendError(f"{self.base_url} is unreachable: {exc}", cause="strong_unreachable", status_code=503)
        if mid_stream:
            return BackendError(
                f"{self.base_url} stream broke off: {type(exc).__name__}: {exc}", cause="strong_stream_broken"
            )
        return BackendError(f"{self.base_url} call failed: {type(exc).__name__}: {exc}", cause="strong_error")

    @staticmethod
    def _decision_headers(decision_id: str | None) -> dict[str, str]:
        return {"x-decision-id": decision_id} if decision_id else {}

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Completion:
        try:
            response = self._http.post(
                "/chat/completions",
                json=self._payload(messages, max_tokens, temperature, stream=False, stop=stop, top_p=top_p),
                headers=self._decision_headers(decision_id),
            )
        except httpx.HTTPError as exc:
            raise self._translate(exc, mid_stream=False) from exc
        self._check(response)
        try:
            body = response.json()
            choice = body["choices"][0]
            text = message_text(choice.get("message") or {})
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(
                f"{self.base_url} returned a body that is not a chat completion: {response.text[:200]}",
                cause="strong_error",
            ) from exc
        usage = body.get("usage") or {}
        reported = _reported_usage(usage)
        prompt_tokens, completion_tokens = reported or (self._prompt_estimate(messages), estimate_tokens(text))
        finish = choice.get("finish_reason") or "stop"
        return Completion(
            text=text,
            model=body.get("model") or self.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            finish_reason=finish,
            usage_estimated=reported is None,
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
        payload = self._payload(messages, max_tokens, temperature, stream=True, stop=stop, top_p=top_p)
        pieces: list[str] = []
        usage: dict[str, Any] = {}
        served: str | None = None
        finish = "stop"
        chunks = 0
        started = False
        finished = False
        try:
            with self._http.stream(
                "POST", "/chat/completions", json=payload, headers=self._decision_headers(decision_id)
            ) as response:
                self._check(response)
                started = True
                for line in response.iter_lines():
                    line = line.strip()
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    try:
                        event = json.loads(data)
                    except ValueError as exc:
                        raise BackendError(
                            f"{self.base_url} sent a stream line that is not JSON: {data[:200]}",
                            cause="strong_stream_broken",
                        ) from exc
                    if "error" in event and not event.get("choices"):
                        error = event["error"]
                        message = error.get("message") if isinstance(error, dict) else str(error)
                        raise BackendError(
                            f"{self.base_url} failed mid-stream: {message}", cause="strong_stream_broken"
                        )
                    if isinstance(event.get("usage"), dict):
                        usage = event["usage"]
                    if isinstance(event.get("model"), str):
                        served = event["model"]
                    for choice in event.get("choices") or []:
                        text = (choice.get("delta") or {}).get("content") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                            finished = True
                        if text:
                            chunks += 1
                            pieces.append(text)
                            yield text
        except BackendError:
            raise
        except httpx.HTTPError as exc:
            raise self._translate(exc, mid_stream=started) from exc
        if not finished:
            raise BackendError(
                f"{self.base_url} ended the stream without a finish reason or [DONE]", cause="strong_stream_broken"
            )
        reported = _reported_usage(usage)
        if reported is not None:
            return StreamResult(*reported, finish, model=served)
        text = "".join(pieces)
        return StreamResult(
            self._prompt_estimate(messages), chunks or estimate_tokens(text), finish, usage_estimated=True, model=served
        )
