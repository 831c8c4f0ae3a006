"""The core pipeline on the real SmolLM2 model: per-call results, cancellation of a plain answer, records."""

from __future__ import annotations

import threading
import time

import pytest

from hybrid_router.backends.llama_cpp import LlamaCppBackend, default_model_path
from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.pipeline import ClientGone, Pipeline, Plan
from hybrid_router.ulid import new_ulid

pytestmark = pytest.mark.slow


class ListRecorder:
    def __init__(self) -> None:
        self.records: list[DecisionRecord] = []
        self.opened: list[DecisionRecord] = []

    def begin(self, record: DecisionRecord) -> None:
        self.opened.append(record)

    def write(self, record: DecisionRecord) -> bool:
        self.records.append(record)
        return True


@pytest.fixture(scope="module")
def model() -> LlamaCppBackend:
    assert default_model_path() is not None
    backend = LlamaCppBackend(n_ctx=1024, n_threads=1)
    backend.load()
    return backend


def pipeline(model: LlamaCppBackend, recorder: ListRecorder) -> Pipeline:
    return Pipeline(model, None, model.name, "strong", recorder, fallback=False)


def plan() -> Plan:
    return Plan(new_ulid(), "weak", "weak", "forced", 0.0, 0.0, "none", "none", 0.0)


def request(prompt: str, max_tokens: int, stream: bool = False) -> ChatCompletionRequest:
    return ChatCompletionRequest(
        model="weak", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, stream=stream
    )


def test_two_concurrent_streams_through_one_backend_each_record_their_own(model) -> None:
    recorder = ListRecorder()
    core = pipeline(model, recorder)
    long_plan, short_plan = plan(), plan()
    long_answer = core.stream(request("Write a long story about a dragon.", 12, stream=True), long_plan)
    results: dict[str, object] = {}

    def short() -> None:
        answer = core.stream(request("What is 2+2? Answer with a number only.", 64, stream=True), short_plan)
        results["text"] = "".join(answer)
        results["finish"] = answer.finish_reason

    thread = threading.Thread(target=short)
    thread.start()
    time.sleep(0.3)  # the short stream now waits for the model the long one holds
    long_text = "".join(long_answer)
    thread.join(timeout=60)
    by_id = {r.decision_id: r for r in recorder.records}
    long_record, short_record = by_id[long_plan.decision_id], by_id[short_plan.decision_id]
    assert long_answer.finish_reason == "length" and long_record.completion_tokens == 12 and long_text
    assert results["finish"] == "stop" and 0 < short_record.completion_tokens < 64
    assert short_record.queue_latency_ms >= 250 > long_record.queue_latency_ms
    assert short_record.generation_latency_ms < short_record.queue_latency_ms + short_record.generation_latency_ms


def test_a_plain_answer_stops_when_the_client_is_gone(model) -> None:
    recorder = ListRecorder()
    core = pipeline(model, recorder)
    calls = {"n": 0}

    def cancelled() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    started = time.perf_counter()
    with pytest.raises(ClientGone) as gone:
        core.complete(request("Write a long story about a dragon.", 200), plan(), cancelled=cancelled)
    [record] = recorder.records
    assert gone.value.record is record
    assert (record.status, record.error) == ("error", "client_disconnected")
    assert 1 <= record.completion_tokens <= 5  # stopped after a few tokens, not at 200
    assert time.perf_counter() - started < 5
    assert model.complete([{"role": "user", "content": "Say hi."}], max_tokens=4).text  # the model is free again
