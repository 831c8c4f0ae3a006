"""The pipeline's one attempt loop, plain and streamed alike: fallbacks, the errors that end the attempts, spend-cap
reservations, and the cascade draft after a failed escalation. Stand-in backends; no model runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hybrid_router.backends import base
from hybrid_router.backends.base import INPUT_REJECTED, LOCAL_BUSY, BackendError, Completion
from hybrid_router.budget import SpendLedger
from hybrid_router.cascade import CascadePolicy
from hybrid_router.costs import CostModel
from hybrid_router.decision import DecisionRecord
from hybrid_router.pipeline import AnswerFailed, Pipeline, Plan
from tests.unit.test_answer_cache import Recorder, Strong, Weak, ask, strong_plan

MODES = pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])


class Drafting(Weak):
    def draft(self, messages, max_tokens=256, temperature=0.0, decision_id=None, stop=None, top_p=None):
        self.calls += 1
        tokens = [{"token": "drafted", "logprob": -0.3}, {"token": " answer", "logprob": -0.2}]
        return base.DraftCompletion(Completion("drafted answer", self.name, 9, 2), tokens)


def pipeline(weak: Weak, strong: Strong, budget: SpendLedger | None = None) -> tuple[Pipeline, Recorder]:
    recorder = Recorder()
    return Pipeline(weak, strong, "weak-1", "strong-1", recorder, CostModel.default(), budget), recorder


def answer(pipe: Pipeline, plan: Plan, stream: bool) -> tuple[str, DecisionRecord]:
    if stream:
        streaming = pipe.stream(ask(stream=True), plan)
        text = "".join(streaming)
        assert streaming.record is not None
        return text, streaming.record
    whole = pipe.complete(ask(), plan)
    return whole.text, whole.record


def ledger(cap_usd: float) -> SpendLedger:
    return SpendLedger(lambda since: 0.0, lambda: datetime.now(UTC), daily_cap_usd=cap_usd)


@MODES
def test_the_planned_side_failing_falls_back_to_the_other(stream) -> None:
    weak, strong = Weak(), Strong()
    strong.fail = BackendError("down", "strong_unreachable", 503)
    pipe, recorder = pipeline(weak, strong)
    text, record = answer(pipe, strong_plan(), stream)
    assert text.strip() == "local answer" and (weak.calls, strong.calls) == (1, 1)
    assert (record.route, record.reason, record.status) == ("weak", "fallback:strong_unreachable", "ok")
    assert record.strong_cost_usd == record.cost_usd  # not the model the plan chose: no saving claimed
    assert recorder.records == [record]


@MODES
def test_a_rejected_input_is_not_retried_on_the_local_model(stream) -> None:
    weak, strong = Weak(), Strong()
    strong.fail = BackendError("too long", INPUT_REJECTED, 400)
    pipe, recorder = pipeline(weak, strong)
    with pytest.raises(AnswerFailed) as failed:
        answer(pipe, strong_plan(), stream)
    assert failed.value.status_code == 400 and weak.calls == 0
    [record] = recorder.records
    assert (record.status, record.reason, record.cost_usd) == ("error", "routed", 0.0)


@MODES
@pytest.mark.parametrize("overflow", [False, True])
def test_a_full_local_queue_goes_to_the_strong_model_only_when_chosen(stream, overflow) -> None:
    weak, strong = Weak(), Strong()
    weak.fail = BackendError("busy", LOCAL_BUSY, 429, retry_after_s=1.0)
    pipe, recorder = pipeline(weak, strong)
    pipe.overflow_to_strong = overflow
    local_plan = strong_plan("weak")
    if not overflow:
        with pytest.raises(AnswerFailed) as failed:
            answer(pipe, local_plan, stream)
        assert failed.value.status_code == 429 and failed.value.retry_after_s == 1.0 and strong.calls == 0
        return
    _, record = answer(pipe, local_plan, stream)
    assert (record.route, record.reason) == ("strong", "fallback:local_busy") and strong.calls == 1


@MODES
def test_a_strong_attempt_holds_its_reservation_until_its_record_is_written(stream) -> None:
    spend = ledger(1.0)
    pipe, recorder = pipeline(Weak(), Strong(), spend)
    if stream:
        streaming = pipe.stream(ask(stream=True), strong_plan())
        assert spend.reserved_usd > 0 and not recorder.records
        "".join(streaming)
    else:
        pipe.complete(ask(), strong_plan())
    assert spend.reserved_usd == 0 and recorder.records[0].route == "strong"


@MODES
def test_over_the_spend_cap_the_local_model_answers(stream) -> None:
    strong = Strong()
    spend = ledger(1e-9)
    pipe, _ = pipeline(Weak(), strong, spend)
    text, record = answer(pipe, strong_plan(), stream)
    assert text.strip() == "local answer" and strong.calls == 0 and spend.reserved_usd == 0
    assert (record.route, record.reason) == ("weak", "budget:daily")


@MODES
def test_a_failed_escalation_hands_out_the_discarded_draft(stream) -> None:
    weak, strong = Drafting(), Strong()
    strong.fail = BackendError("down", "strong_unreachable", 503)
    pipe, recorder = pipeline(weak, strong)
    plan = strong_plan()
    plan.cascade = CascadePolicy(0.0, 1.0, min_confidence=1.0)  # no draft is kept
    text, record = answer(pipe, plan, stream)
    assert text == "drafted answer" and (weak.calls, strong.calls) == (1, 1)
    assert (record.route, record.reason, record.escalated, record.draft_tokens) == (
        "weak",
        "fallback:strong_unreachable",
        True,
        2,
    )
    assert recorder.records == [record]
