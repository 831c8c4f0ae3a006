"""The real llama.cpp model behind the stand-in SageMaker container: raw-prompt and chat generation.

TGI/LMI-shaped requests carry a prompt already rendered with a chat template, so the container needs plain
completion on a prompt; messages-shaped requests use the chat template stored in the GGUF file.
llama.cpp is not thread-safe: every generation holds the lock until its stream is exhausted or closed (the
container closes a stream as soon as its client goes away). Counting a prompt's tokens reads only the vocabulary,
so it takes no lock and never waits for a running generation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_router.backends.base import sampling_options
from hybrid_router.backends.llama_cpp import LlamaCppBackend
from local_stack.weights import model_name_for


@dataclass
class Piece:
    """One generated token's text (may be empty); the last piece also has the finish reason and prompt size."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None


@dataclass
class Generation:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


class PromptTooLong(ValueError):
    """The prompt and the tokens asked for do not fit the context window: TGI's check, in TGI's words."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, n_ctx: int):
        super().__init__(
            f"`inputs` tokens + `max_new_tokens` must be <= {n_ctx}. Given: {prompt_tokens} `inputs` "
            f"tokens and {max_new_tokens} `max_new_tokens`"
        )
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.n_ctx = n_ctx


class LlamaTextModel(LlamaCppBackend):
    """The device's llama.cpp backend (loading, lock, chat) plus generation on an already-rendered prompt."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        n_ctx: int = 2048,
        n_threads: int | None = None,
        name: str | None = None,
        seed: int = 0,
    ):
        path = Path(model_path)
        super().__init__(
            path,
            n_ctx=n_ctx,
            n_threads=n_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or None,
            name=name or model_name_for(path),
            seed=seed,
        )
        self.load_seconds: float | None = None
        self._chat_formatter: Any = None

    def _ensure_loaded(self) -> Any:
        if self._llama is None:
            started = time.perf_counter()
            super()._ensure_loaded()
            self.load_seconds = time.perf_counter() - started
        return self._llama

    def close(self) -> None:
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._ensure_loaded().tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def _loaded(self) -> Any:
        if self._llama is None:
            with self._lock:
                self._ensure_loaded()
        return self._llama

    def check_fits(self, prompt_tokens: int, max_new_tokens: int) -> None:
        """Raises PromptTooLong unless prompt + answer fit the context (llama.cpp would fail on a prompt that does
        not fit, and silently shorten an answer that does not)."""
        if prompt_tokens + max_new_tokens > self.n_ctx:
            raise PromptTooLong(prompt_tokens, max_new_tokens, self.n_ctx)

    def prompt_token_count(self, prompt: str) -> int:
        """Tokens of an already-rendered prompt, as create_completion counts them (BOS if the model adds one)."""
        return len(self._loaded().tokenize(prompt.encode("utf-8"), add_bos=True, special=True))

    def chat_token_count(self, messages: list[dict]) -> int:
        """Tokens of messages rendered with the GGUF file's chat template, as create_chat_completion counts them;
        without a template, the tokens of the texts alone (a lower bound)."""
        llama = self._loaded()
        if self._chat_formatter is None:
            template = llama.metadata.get("tokenizer.chat_template")
            if template:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                def token_text(token: int) -> str:
                    return llama.detokenize([token], special=True).decode("utf-8", "replace") if token != -1 else ""

                self._chat_formatter = Jinja2ChatFormatter(
                    template=template, eos_token=token_text(llama.token_eos()), bos_token=token_text(llama.token_bos())
                )
            else:
                self._chat_formatter = False
        if self._chat_formatter:
            text = self._chat_formatter(messages=messages).prompt
        else:
            text = "\n".join(str(m.get("content") or "") for m in messages)
        return len(llama.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def prompt_tokens(self, text: str) -> list[tuple[int, str]]:
        """(id, text) of each prompt token, as TGI's `prefill` details list them."""
        with self._lock:
            llama = self._ensure_loaded()
            ids = llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            return [(i, llama.detokenize([i]).decode("utf-8", errors="replace")) for i in ids]

    def stream_prompt(
        self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Iterator[Piece]:
        with self._lock:
            llama = self._ensure_loaded()
            chunks = llama.create_completion(
                prompt=prompt, max_tokens=max_tokens, temperature=temperature, stop=stop or None, stream=True
            )
            try:
                yield from self._pieces(llama, chunks, lambda choice: choice.get("text") or "")
            finally:  # closed early (the client went away): stop llama.cpp's generator before the lock goes
                chunks.close()

    def stream_chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Iterator[Piece]:
        with self._lock:
            llama = self._ensure_loaded()
            chunks = llama.create_chat_completion(
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
                stream=True,
                **sampling_options(stop, top_p),
            )
            try:
                yield from self._pieces(llama, chunks, lambda choice: (choice.get("delta") or {}).get("content") or "")
            finally:
                chunks.close()

    @staticmethod
    def _pieces(llama: Any, chunks: Iterator[dict], text_of: Any) -> Iterator[Piece]:
        generated = 0
        for chunk in chunks:
            choice = chunk["choices"][0]
            text = text_of(choice)
            finish = choice.get("finish_reason")
            generated += 1 if text else 0
            if finish:
                # The context holds prompt + generated tokens (the last one unevaluated on the length limit).
                prompt = int(llama.n_tokens) - generated + (1 if finish == "length" else 0)
                yield Piece(text, finish, prompt_tokens=max(prompt, 0))
            else:
                yield Piece(text)

    def complete_prompt(
        self, prompt: str, max_tokens: int, temperature: float, stop: list[str] | None = None
    ) -> Generation:
        with self._lock:
            result = self._ensure_loaded().create_completion(
                prompt=prompt, max_tokens=max_tokens, temperature=temperature, stop=stop or None
            )
        return self._generation(result["choices"][0].get("text") or "", result)

    def complete_chat(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stop: list[str] | None = None,
        top_p: float | None = None,
    ) -> Generation:
        with self._lock:
            result = self._ensure_loaded().create_chat_completion(
                messages=messages, max_tokens=max_tokens, temperature=temperature, **sampling_options(stop, top_p)
            )
        return self._generation(result["choices"][0]["message"].get("content") or "", result)

    @staticmethod
    def _generation(text: str, result: dict) -> Generation:
        usage = result.get("usage") or {}
        return Generation(
            text=text,
            finish_reason=result["choices"][0].get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
        )
