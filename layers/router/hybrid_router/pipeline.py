"""The one request path: plan -> attempts -> answer (plain or streamed) -> one decision record.

The device server, the CLI and the cloud API all answer through `Pipeline.complete` and `Pipeline.stream`.
What differs between them is settings, not code:

- `fallback`: the device answers with the other side when the chosen one fails; the cloud does not.
- `budget`: the device's spend caps (a SpendLedger); the cloud has none.
- `recorder`: where records go and what a failed write does. The device's recorder raises (the answer is
  withheld, HTTP 507); the cloud's returns False (the answer is paid for already, and carries its record).

A plan is made by the caller (the device from its route source, the cloud from its router) and says which side
the router chose and why; every call returns its own Answer or StreamingAnswer, nothing per request is kept on
shared objects.

Cascade mode (hybrid_router.cascade): a plan whose router score fell in the cascade band carries the policy
(`Plan.cascade`). The local model then drafts first, whole and with token log-probabilities, and the draft's
confidence decides: kept, it is the answer (reason `cascade:kept`; a stream gets it only now, in one piece);
otherwise the prompt escalates to the strong model (reason `cascade:escalated`; a stream streams the strong answer).
If the strong model then fails or is over the spend cap, the draft is the answer after all when fallback is on
(reason `fallback:<cause>` or `budget:<cap>`). A draft that fails sends the prompt to the strong model
(`fallback:<cause>`). The record carries the draft's tokens, time and confidence either way.

Privacy (hybrid_router.privacy): a plan whose conversation carries private data holds the check (`Plan.privacy`).
Kept local (reason `privacy:<kind>`), the strong model is never tried, not even as a fallback; refused, no model is
asked and the record says so; redacted, the strong model gets placeholders and its answer gets the values back
here. The record names the kinds, and keeps (when prompts are kept) the redacted prompt, never the values.

The answer cache (hybrid_router.cache, `cache`): before a strong attempt the request is looked up; a hit is the
answer (reason `cache:exact`, no strong cost, `cached_from` the decision that paid; a stream streams the cached
text), and a strong answer that completed OK is stored after its record is written. A request carrying private
data is never looked up or stored.

In the code: `_prepare` makes a request's Job (refusing private data, drafting in the cascade band); `_answer` is
the one attempt loop of both kinds of answer, and a mode (PlainMode, StreamMode) hands out what it finds: an
attempt's answer, a cached one or the draft. `record` builds the decision record from the Job and its Outcome, at
the price CostModel.charge puts on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from hybrid_router.backends.base import (
    INPUT_REJECTED,
    LOCAL_BUSY,
    BackendError,
    ChatBackend,
    Completion,
    DraftingBackend,
    StreamResult,
)
from hybrid_router.budget import BudgetExceeded, Reservation, SpendLedger
from hybrid_router.cache import CACHE_EXACT, CachedAnswer
from hybrid_router.cache.step import CacheStep, cached_pieces
from hybrid_router.cascade import CascadePolicy, answer_confidence
from hybrid_router.costs import Charge, CostModel
from hybrid_router.decision import (
    BUDGET_PREFIX,
    ESCALATED,
    FORCED,
    KEPT,
    PRIVACY_PREFIX,
    DecisionRecord,
    Route,
    fallback,
    is_fallback,
)
from hybrid_router.openai_schema import ChatCompletionRequest

if TYPE_CHECKING:  # the cloud never detects (the device does): it does not pay for compiling the patterns
    from hybrid_router.privacy import PrivacyCheck

log = logging.getLogger("hybrid_router.pipeline")


@dataclass
class Plan:
    """The decision for one request, before any model runs. `remote`: the decision went through the cloud, so a
    local answer still cost a cloud request."""

    decision_id: str
    requested_model: str
    route: Route
    reason: str
    score: float
    threshold: float
    router_id: str
    router_version: str
    router_latency_ms: float
    remote: bool = False
    tenant_id: str = "local"
    device_id: str = "local"
    cascade: CascadePolicy | None = None  # the score is in the cascade band: the local model drafts first
    # Record fields of a router experiment (hybrid_router.experiments.decide): experiment id, arm, shadow decision.
    experiment_fields: dict = field(default_factory=dict)
    privacy: PrivacyCheck | None = None  # what the privacy detector found (None: the `privacy` setting is off)
    decided_route: Route | None = None  # what the router chose, when the plan answers otherwise (no weak endpoint)


CANNOT_DRAFT = "local_cannot_draft"


@dataclass
class Draft:
    """The local draft of a cascade request: its text and usage, its time (`seconds` includes `queue_s`, waiting
    for the local model), its confidence, and whether the policy keeps it."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    queue_s: float
    confidence: float
    kept: bool

    @property
    def generation_s(self) -> float:
        return max(self.seconds - self.queue_s, 0.0)

    @property
    def usage(self) -> StreamResult:
        return StreamResult(self.prompt_tokens, self.completion_tokens, self.finish_reason, self.queue_s)


UNFINISHED = "unfinished: the stream started and was cut off before it ended (the process stopped)"


class Recorder(Protocol):
    def begin(self, record: DecisionRecord) -> None:
        """A stream has started: keep `record` (an error record saying it never ended) until `write` replaces
        it, so a killed process still leaves a record for the decision id its client holds. May do nothing."""
        ...

    def write(self, record: DecisionRecord) -> bool:
        """Stores the record: True when stored, False when it could not be (the caller reports it); or raises
        to withhold the answer (the device's fail-closed log)."""
        ...


class ClientGone(Exception):
    """The caller went away before a plain answer was complete: generation stopped, the record says so."""

    def __init__(self, record: DecisionRecord):
        super().__init__(f"the client disconnected; decision {record.decision_id} recorded as client_disconnected")
        self.record = record


PRIVATE_DATA = "private_data"


class PrivateDataRefused(BackendError):
    """The conversation carries private data and the `privacy` setting is `refuse`: no model was asked."""

    def __init__(self, kinds: list[str]):
        super().__init__(
            f"refused: the conversation carries private data ({', '.join(kinds)}) and the privacy setting is "
            "refuse; remove it, or change the setting (local, redact)",
            cause=PRIVATE_DATA,
            status_code=400,
        )


class AnswerFailed(BackendError):
    """No side could answer. `errors`: each attempt's error, in order (the last one decides the status)."""

    def __init__(self, message: str, errors: list[BackendError]):
        last = errors[-1] if errors else BackendError(message, cause="no_backend", status_code=503)
        super().__init__(
            message,
            cause=last.cause,
            status_code=last.status_code if last.status_code >= 400 else 502,
            retry_after_s=last.retry_after_s,
        )
        self.errors = errors
        self.last = last


@dataclass
class Answer:
    text: str
    finish_reason: str
    record: DecisionRecord
    stored: bool = True


@dataclass
class Attempt:
    route: Route
    backend: ChatBackend
    reservation: Reservation | None = None


@dataclass
class Job:
    """One request being answered: its plan, what a model is sent, when it started, its answer cache key (None:
    not cached) and, in the cascade band, the local draft or the error that kept it from being made."""

    plan: Plan
    request: ChatCompletionRequest
    messages: list[dict]
    options: dict
    started: float
    key_of: Callable[[Job], str | None]  # the cache key, computed only for a strong attempt (hashing costs)
    draft: Draft | None = None
    draft_error: BackendError | None = None

    @cached_property
    def cache_key(self) -> str | None:
        return self.key_of(self)


NO_USAGE = StreamResult(0, 0)


@dataclass(frozen=True)
class Outcome:
    """How a request ended, as its record tells it: the side that answered (or failed) and why, the answer's usage
    (`usage.model`: the name the strong server gave the model), its time (`seconds` includes `usage.queue_s`), the
    error that ended it, and the cached answer it served again."""

    route: Route
    reason: str
    usage: StreamResult = NO_USAGE
    seconds: float = 0.0
    error: str | None = None
    cached: CachedAnswer | None = None

    @property
    def generation_s(self) -> float:
        """The model's time: waiting for a busy local model is not generation."""
        return max(self.seconds - self.usage.queue_s, 0.0)


def _completion_usage(completion: Completion) -> StreamResult:
    return StreamResult(
        completion.prompt_tokens,
        completion.completion_tokens,
        completion.finish_reason,
        completion.queue_s,
        completion.usage_estimated,
        completion.model,
    )


def _cached_usage(hit: CachedAnswer) -> StreamResult:
    return StreamResult(hit.prompt_tokens, hit.completion_tokens, hit.finish_reason)


def _stream_result(value: StreamResult | tuple | None) -> StreamResult | None:
    """A stream's return value as a StreamResult (a backend may return a bare (prompt, completion) pair)."""
    if value is None or isinstance(value, StreamResult):
        return value
    return StreamResult(*value)


def prompt_token_estimate(backend: ChatBackend, messages: list[dict]) -> int:
    """The prompt's tokens when the model reported none: the backend's own count where it has one (the local
    model's tokenizer), else about four characters a token plus a few tokens of chat markup per message."""
    counter = getattr(backend, "count_prompt_tokens", None)
    if callable(counter):
        try:
            return int(counter(messages))
        except Exception:  # noqa: BLE001 - a count is best effort; the estimate below stands in
            log.debug("count_prompt_tokens failed; estimating", exc_info=True)
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return (chars + 3) // 4 + 4 * len(messages)


def _load(backend: ChatBackend) -> None:
    """Load a lazy local model before the clock starts: generation latency and energy exclude loading."""
    load = getattr(backend, "load", None)  # only lazy backends have one
    if getattr(backend, "loaded", True) is False and load is not None:
        load()


def _plan_fields(plan: Plan) -> dict[str, Any]:
    """A record's fields that come from the plan: the decision, the router that made it, what the privacy
    detector found, a router experiment's fields."""
    return {
        "decision_id": plan.decision_id,
        "tenant_id": plan.tenant_id,
        "device_id": plan.device_id,
        "router_id": plan.router_id,
        "router_version": plan.router_version,
        "score": min(max(plan.score, 0.0), 1.0),
        "threshold": min(max(plan.threshold, 0.0), 1.0),
        "router_latency_ms": plan.router_latency_ms,
        "privacy_kinds": plan.privacy.kinds if plan.privacy else [],
        **plan.experiment_fields,
    }


def _draft_fields(draft: Draft | None) -> dict[str, Any]:
    """A cascade record's fields about the local draft, kept or discarded (none without a draft)."""
    if draft is None:
        return {}
    return {
        "draft_tokens": draft.completion_tokens,
        "draft_latency_ms": draft.generation_s * 1e3,
        "confidence": min(max(draft.confidence, 0.0), 1.0),
        "escalated": not draft.kept,
    }


class Pipeline:
    def __init__(
        self,
        weak: ChatBackend | None,
        strong: ChatBackend | None,
        weak_name: str,
        strong_name: str,
        recorder: Recorder,
        costs: CostModel | None = None,
        budget: SpendLedger | None = None,
        fallback: bool = True,
        store_prompts: bool = False,
        default_max_tokens: int = 256,
        fallback_forced: bool = False,
        overflow_to_strong: bool = False,
        cache: CacheStep | None = None,
    ):
        self.weak = weak
        self.strong = strong
        self.weak_name = weak_name
        self.strong_name = strong_name
        self.recorder = recorder
        self.costs = costs or CostModel.default()
        self.budget = budget
        self.fallback = fallback
        self.fallback_forced = fallback_forced  # a request naming a model may get the other one's answer
        self.overflow_to_strong = overflow_to_strong  # a full local queue sends the request to the strong model
        self.store_prompts = store_prompts
        self.default_max_tokens = default_max_tokens
        self.cache = cache  # strong answers served again for the same request (None: no cache)

    # what a request will try

    @staticmethod
    def messages(request: ChatCompletionRequest) -> list[dict]:
        return [{"role": m.role, "content": m.text()} for m in request.messages]

    def max_tokens(self, request: ChatCompletionRequest) -> int:
        return request.token_limit(self.default_max_tokens)

    def budget_problem(self, request: ChatCompletionRequest) -> BudgetExceeded | None:
        """Whether a strong answer to this request could pass a cap now (the attempt reserves for real)."""
        if self.budget is None:
            return None
        try:
            self.budget.reserve(self.messages(request), self.max_tokens(request)).release()
        except BudgetExceeded as exc:
            return exc
        return None

    def attempts(
        self, plan: Plan, draft: Draft | None = None, draft_error: BackendError | None = None
    ) -> tuple[list[Attempt], str]:
        """Backends to try in order, and the reason to record if the first one answers. In the cascade band (the
        draft was not kept, or failed) that is the strong model alone: the draft, if any, is the fallback."""
        weak = Attempt("weak", self.weak) if self.weak is not None else None
        strong = Attempt("strong", self.strong) if self.strong is not None else None
        if plan.cascade is not None:
            reason = ESCALATED if draft is not None else fallback(draft_error.cause if draft_error else "draft")
            if draft_error is not None and weak is not None and self.ends_attempts(weak, draft_error):
                return [], reason
            if strong is None:
                return [], fallback("strong_not_configured") if draft is not None else reason
            return [strong], reason
        chosen, other = (strong, weak) if plan.route == "strong" else (weak, strong)
        if plan.reason.startswith((BUDGET_PREFIX, PRIVACY_PREFIX)) or (plan.privacy and plan.privacy.keeps_local):
            return ([weak] if weak else []), plan.reason  # over a cap, or private: never strong, not even as fallback
        may_fall_back = self.fallback and (plan.reason != FORCED or self.fallback_forced)
        if chosen is None:
            if other is None or not may_fall_back:
                return [], plan.reason
            return [other], fallback(f"{plan.route}_not_configured")
        return ([chosen, other] if may_fall_back and other else [chosen]), plan.reason

    def ends_attempts(self, attempt: Attempt, error: BackendError) -> bool:
        """Errors after which no other model is tried: the strong model refused the input itself (the local
        model's context is smaller still), or the local queue is full and spilling over to the strong model
        (which costs money) is not what the user chose."""
        if error.cause == INPUT_REJECTED:
            return True
        return error.cause == LOCAL_BUSY and attempt.route == "weak" and not self.overflow_to_strong

    def _options(self, request: ChatCompletionRequest, plan: Plan) -> dict:
        return {
            "max_tokens": self.max_tokens(request),
            "temperature": request.temperature or 0.0,
            "decision_id": plan.decision_id,
            "stop": request.stop_list(),
            "top_p": request.top_p,
        }

    def _reserve(self, attempt: Attempt, job: Job) -> None:
        """A strong attempt first reserves its worst-case cost (raises BudgetExceeded); the weak one costs none."""
        if attempt.route == "strong" and self.budget is not None:
            attempt.reservation = self.budget.reserve(job.messages, job.options["max_tokens"])

    @staticmethod
    def _settle(attempts: list[Attempt]) -> None:
        for attempt in attempts:
            if attempt.reservation is not None:
                attempt.reservation.release()

    # what a model is sent, and what it gives back

    @staticmethod
    def _sent(attempt: Attempt, job: Job) -> list[dict]:
        """What an attempt's model is given: the strong model gets a redacted conversation when the plan redacts."""
        privacy = job.plan.privacy
        return privacy.outgoing(job.messages) if attempt.route == "strong" and privacy else job.messages

    @staticmethod
    def _received(attempt: Attempt, plan: Plan, text: str) -> str:
        """An attempt's answer with redacted values put back."""
        return plan.privacy.incoming(text) if attempt.route == "strong" and plan.privacy else text

    def _pieces(self, attempt: Attempt, job: Job) -> Generator[str, None, StreamResult]:
        """An attempt's answer as it streams, with redacted values put back."""
        pieces = attempt.backend.stream(self._sent(attempt, job), **job.options)
        privacy = job.plan.privacy
        if attempt.route == "strong" and privacy is not None and privacy.redacts:
            assert privacy.redaction is not None
            return privacy.redaction.restore_stream(pieces)
        return pieces

    # the record

    def record(self, job: Job, outcome: Outcome) -> DecisionRecord:
        """The decision record of `job` ending as `outcome`, at the price CostModel.charge puts on it. The strong
        model is named as its server named it (the cloud's real name behind the alias `strong`), if it did."""
        usage, route = outcome.usage, outcome.route
        strong_name = (usage.model or self.strong_name)[:200] if route == "strong" else self.strong_name
        charge = self._charge(job, outcome)
        return DecisionRecord(
            route=route,
            reason=outcome.reason,
            weak_model=self.weak_name,
            strong_model=strong_name,
            model_used=self.weak_name if route == "weak" else strong_name,
            prompt_tokens=int(usage.prompt_tokens),
            completion_tokens=int(usage.completion_tokens),
            generation_latency_ms=outcome.generation_s * 1000.0,
            queue_latency_ms=usage.queue_s * 1000.0,
            cost_usd=charge.cost_usd,
            strong_cost_usd=charge.strong_cost_usd,
            energy_wh=charge.energy_wh,
            status="error" if outcome.error else "ok",
            error=outcome.error[:500] if outcome.error else None,
            prompt=self._kept_prompt(job.plan, job.request) if self.store_prompts else None,
            usage_estimated=usage.usage_estimated,
            cached_from=outcome.cached.decision_id if outcome.cached is not None else None,
            **_plan_fields(job.plan),
            **_draft_fields(job.draft),
        )

    def _charge(self, job: Job, outcome: Outcome) -> Charge:
        plan, usage = job.plan, outcome.usage
        return self.costs.charge(
            outcome.route,
            int(usage.prompt_tokens),
            int(usage.completion_tokens),
            outcome.generation_s,
            remote=plan.remote,
            failed=outcome.error is not None,
            fell_back=outcome.route != plan.route and is_fallback(outcome.reason),
            draft_s=job.draft.generation_s if job.draft is not None else None,
            cached_cost_usd=outcome.cached.cost_usd if outcome.cached is not None else None,
        )

    @staticmethod
    def _kept_prompt(plan: Plan, request: ChatCompletionRequest) -> str | None:
        """The prompt a record keeps (records are synced to the cloud): private values redacted."""
        return plan.privacy.safe_text() if plan.privacy else request.last_user_text()

    def write(self, record: DecisionRecord) -> bool:
        return self.recorder.write(record)

    def _write_settled(self, record: DecisionRecord, attempt: Attempt) -> bool:
        """Writes an answer's record, then releases its attempt's reservation: the real cost counts instead."""
        try:
            return self.write(record)
        finally:
            self._settle([attempt])

    # answering

    def complete(
        self, request: ChatCompletionRequest, plan: Plan, cancelled: Callable[[], bool] | None = None
    ) -> Answer:
        """A whole answer. With `cancelled` (e.g. "has the HTTP client hung up?"), the answer is generated as a
        stream and stops at the first piece after `cancelled()` turns true (raises ClientGone)."""
        if cancelled is not None:
            return self._complete_cancellable(request, plan, cancelled)
        job = self._prepare(request, plan)
        return self._answer(job, PlainMode(self, job))

    def stream(self, request: ChatCompletionRequest, plan: Plan, open_record: bool = True) -> StreamingAnswer:
        """Starts the answer: fallbacks happen before the first piece, so the route is known up front. The
        record is opened (Recorder.begin) before the first piece is handed out, unless `open_record` is False."""
        job = self._prepare(request, plan)
        return self._answer(job, StreamMode(self, job, open_record))

    def _prepare(self, request: ChatCompletionRequest, plan: Plan) -> Job:
        """The request made ready to answer: refused (raises PrivateDataRefused) when its private data says so;
        in the cascade band, drafted by the local model."""
        messages, options = self.messages(request), self._options(request, plan)
        job = Job(plan, request, messages, options, time.perf_counter(), self._cache_key)
        if plan.privacy is not None and plan.privacy.refuses:
            raise self.refuse(job)
        job.draft, job.draft_error = self._draft(job)
        return job

    def _answer(self, job: Job, mode: AnswerMode[AnswerT]) -> AnswerT:
        """The answer, plain or streamed as `mode` hands it out: a kept draft; else the first attempt that answers
        (the planned route, then the fallback), from the cache or its model; else the discarded draft after all;
        else AnswerFailed. The attempt that answers settles when its record is written (a stream's at its end)."""
        if job.draft is not None and job.draft.kept:
            return mode.from_draft(KEPT)
        attempts, reason = self.attempts(job.plan, job.draft, job.draft_error)
        errors: list[BackendError] = [job.draft_error] if job.draft_error else []
        answered: Attempt | None = None
        try:
            for attempt in attempts:
                hit = self._cache_lookup(attempt, job)
                if hit is not None:
                    return mode.from_cache(hit)
                try:
                    self._reserve(attempt, job)
                except BudgetExceeded as exc:
                    reason = exc.reason if attempt is attempts[0] else reason
                    continue
                try:
                    _load(attempt.backend)
                    answer = mode.from_attempt(attempt, reason)
                except BackendError as exc:
                    errors.append(exc)
                    reason = fallback(exc.cause)
                    if self.ends_attempts(attempt, exc):
                        break
                    continue
                answered = attempt
                return answer
            if self._draft_is_fallback(job.draft, errors):
                return mode.from_draft(self._fallback_reason(reason, errors))
            raise self.give_up(job, errors)
        finally:
            self._settle([a for a in attempts if a is not answered])

    def _complete_cancellable(
        self, request: ChatCompletionRequest, plan: Plan, cancelled: Callable[[], bool]
    ) -> Answer:
        answer = self.stream(request, plan, open_record=False)  # the client holds no decision id until the end
        for _ in answer:
            if cancelled():
                answer.close("client_disconnected")
                assert answer.record is not None
                raise ClientGone(answer.record)
        assert answer.record is not None
        return Answer(answer.text, answer.finish_reason, answer.record, answer.stored)

    # requests nobody answers

    def refuse(self, job: Job) -> PrivateDataRefused:
        """Records a refused request (privacy setting `refuse`) and returns the error to raise."""
        assert job.plan.privacy is not None
        refused = PrivateDataRefused(job.plan.privacy.kinds)
        self.write(self.record(job, Outcome("weak", job.plan.reason, error=str(refused))))
        return refused

    def give_up(self, job: Job, errors: list[BackendError]) -> AnswerFailed:
        """Records the failed request and returns the error to raise. A strong model that refused the input (e.g. a
        prompt over its context) ends the attempts: the request is wrong, not the cloud down, and the local model,
        with a smaller context, would not be a fallback but a silent different answer."""
        plan, draft = job.plan, job.draft
        if not errors:  # nothing was tried: the side the plan names has no backend here
            side = "strong" if plan.route == "strong" else "local"
            errors = [BackendError(f"the {side} model is not configured", f"{plan.route}_not_configured", 503)]
        message = "; ".join(f"{e.cause}: {e}" for e in errors)
        reason = fallback(errors[0].cause) if len(errors) > 1 else plan.reason  # why it fell back
        if draft is not None and len(errors) <= 1:
            reason = ESCALATED
        route = "strong" if draft is not None else plan.route  # an escalated prompt failed on the strong side
        seconds = time.perf_counter() - job.started
        self.write(self.record(job, Outcome(route, reason, seconds=seconds, error=message)))
        lead = "no model could answer"
        if errors and errors[-1].cause == INPUT_REJECTED:
            lead = "the strong model refused this request" + (
                "" if len(errors) > 1 or not self.fallback else ", so it was not retried on the local model"
            )
        return AnswerFailed(f"{lead}: {message}", errors)

    # the answer cache: before a strong attempt, look up; after a strong answer completed OK, store

    def _cache_key(self, job: Job) -> str | None:
        plan = job.plan
        if self.cache is None or (plan.privacy is not None and plan.privacy.kinds):
            return None  # no cache; or private data, whose answers are never kept
        return self.cache.key(job.messages, self.strong_name, job.options, job.request.model_extra)

    def _cache_lookup(self, attempt: Attempt, job: Job) -> CachedAnswer | None:
        if self.cache is None or attempt.route != "strong":
            return None
        return self.cache.lookup(job.cache_key)

    def _cache_store(self, job: Job, text: str, finish_reason: str | None, record: DecisionRecord) -> None:
        if self.cache is not None and record.route == "strong":  # only strong answers are kept
            self.cache.remember(job.cache_key, text, finish_reason, record)

    # cascade: the local draft

    def _draft(self, job: Job) -> tuple[Draft | None, BackendError | None]:
        """In the cascade band, the local model's draft and the policy's verdict on it; else (None, None). A draft
        that cannot be made is (None, the error): the prompt goes to the strong model."""
        policy = job.plan.cascade
        if policy is None:
            return None, None
        if not isinstance(self.weak, DraftingBackend):
            return None, BackendError("the local model cannot draft with token log-probabilities", CANNOT_DRAFT)
        began = time.perf_counter()
        try:
            _load(self.weak)
            began = time.perf_counter()
            made = self.weak.draft(job.messages, **job.options)
        except BackendError as exc:
            log.warning("cascade draft failed (%s); asking the strong model", exc.cause)
            return None, exc
        except KeyboardInterrupt:  # Ctrl-C in the CLI while the draft is made: still logged
            interrupted = Outcome("weak", job.plan.reason, seconds=time.perf_counter() - began, error="interrupted")
            self.write(self.record(job, interrupted))
            raise
        seconds = time.perf_counter() - began
        completion = made.completion
        features = answer_confidence(made.tokens, completion.text)
        confidence = policy.confidence(features, job.options["max_tokens"])
        return Draft(
            completion.text,
            completion.finish_reason or "stop",
            completion.prompt_tokens,
            completion.completion_tokens,
            seconds,
            completion.queue_s,
            confidence,
            policy.keeps(confidence),
        ), None

    def _draft_is_fallback(self, draft: Draft | None, errors: list[BackendError]) -> bool:
        """After the strong model failed (or was never asked: over a cap, not configured), the discarded draft is
        the answer when fallback is on, unless the strong model refused the input itself."""
        if draft is None or not self.fallback:
            return False
        return not (errors and errors[-1].cause == INPUT_REJECTED)

    @staticmethod
    def _fallback_reason(reason: str, errors: list[BackendError]) -> str:
        return fallback(errors[0].cause) if errors else reason


AnswerT = TypeVar("AnswerT")
AnswerT_co = TypeVar("AnswerT_co", covariant=True)


class AnswerMode(Protocol[AnswerT_co]):
    """How answers are handed out (whole, or as streams), from each place an answer can come from."""

    def from_attempt(self, attempt: Attempt, reason: str) -> AnswerT_co:
        """The attempt's model answers (it is loaded, and reserved for); raises BackendError when it cannot."""
        ...

    def from_cache(self, hit: CachedAnswer) -> AnswerT_co:
        """A strong answer served again from the answer cache."""
        ...

    def from_draft(self, reason: str) -> AnswerT_co:
        """The cascade draft, kept or the fallback after all."""
        ...


@dataclass
class PlainMode:
    """Whole answers (Pipeline.complete): each recorded before it is handed out."""

    pipeline: Pipeline
    job: Job

    def from_attempt(self, attempt: Attempt, reason: str) -> Answer:
        pipeline, job = self.pipeline, self.job
        began = time.perf_counter()
        completion = attempt.backend.complete(pipeline._sent(attempt, job), **job.options)
        outcome = Outcome(attempt.route, reason, _completion_usage(completion), time.perf_counter() - began)
        record = pipeline.record(job, outcome)
        stored = pipeline._write_settled(record, attempt)
        text = pipeline._received(attempt, job.plan, completion.text)
        pipeline._cache_store(job, text, completion.finish_reason, record)
        return Answer(text, completion.finish_reason, record, stored)

    def from_cache(self, hit: CachedAnswer) -> Answer:
        outcome = Outcome("strong", CACHE_EXACT, _cached_usage(hit), cached=hit)
        return self._recorded(hit.text, hit.finish_reason, outcome)

    def from_draft(self, reason: str) -> Answer:
        draft = self.job.draft
        assert draft is not None
        return self._recorded(draft.text, draft.finish_reason, Outcome("weak", reason, draft.usage, draft.seconds))

    def _recorded(self, text: str, finish_reason: str, outcome: Outcome) -> Answer:
        record = self.pipeline.record(self.job, outcome)
        return Answer(text, finish_reason, record, self.pipeline.write(record))


@dataclass
class StreamMode:
    """Streamed answers (Pipeline.stream): each record is opened (Recorder.begin) before the first piece is handed
    out, unless `open_record` is False, and written when the stream ends (StreamingAnswer)."""

    pipeline: Pipeline
    job: Job
    open_record: bool

    def from_attempt(self, attempt: Attempt, reason: str) -> StreamingAnswer:
        """The model's stream, its first piece awaited here: a model that fails before it falls back."""
        pipeline, job = self.pipeline, self.job
        began = time.perf_counter()
        pieces = pipeline._pieces(attempt, job)
        try:
            first = next(pieces)
        except StopIteration as stop:  # an empty answer
            return StreamingAnswer(pipeline, job, attempt, reason, began, None, iter(()), _stream_result(stop.value))
        except KeyboardInterrupt:  # Ctrl-C before the first piece (a long prompt being read): still logged
            interrupted = Outcome(attempt.route, reason, seconds=time.perf_counter() - began, error="interrupted")
            pipeline.write(pipeline.record(job, interrupted))
            raise
        try:
            self._open(attempt.route, reason)
        except BaseException:
            pieces.close()
            raise
        return StreamingAnswer(pipeline, job, attempt, reason, began, first, pieces, None)

    def from_cache(self, hit: CachedAnswer) -> StreamingAnswer:
        """The cached text, word by word."""
        strong = self.pipeline.strong
        assert strong is not None
        self._open("strong", CACHE_EXACT, hit)
        text = cached_pieces(hit.text)
        attempt = Attempt("strong", strong)
        began, usage = time.perf_counter(), _cached_usage(hit)
        first = next(text, None)
        return StreamingAnswer(self.pipeline, self.job, attempt, CACHE_EXACT, began, first, text, usage, cached=hit)

    def from_draft(self, reason: str) -> StreamingAnswer:
        """The held draft as a stream of one piece (it is complete already)."""
        draft, weak = self.job.draft, self.pipeline.weak
        assert draft is not None and weak is not None
        self._open("weak", reason)
        attempt, began = Attempt("weak", weak), time.perf_counter()
        return StreamingAnswer(
            self.pipeline, self.job, attempt, reason, began, draft.text or None, iter(()), draft.usage
        )

    def _open(self, route: Route, reason: str, cached: CachedAnswer | None = None) -> None:
        if self.open_record:
            opened = Outcome(route, reason, error=UNFINISHED, cached=cached)
            self.pipeline.recorder.begin(self.pipeline.record(self.job, opened))


@dataclass
class StreamingAnswer:
    """Text pieces of an answer in progress. Iterating to the end (or closing) writes the decision record."""

    pipeline: Pipeline
    job: Job
    attempt: Attempt
    reason: str
    began: float
    first: str | None
    rest: Iterator[str]
    usage: StreamResult | None
    cached: CachedAnswer | None = None  # a cache hit: the answer streams the cached text
    record: DecisionRecord | None = None
    stored: bool = True
    finish_reason: str = "stop"
    text_parts: list[str] = field(default_factory=list)

    @property
    def plan(self) -> Plan:
        return self.job.plan

    @property
    def route(self) -> Route:
        return self.attempt.route

    @property
    def model(self) -> str:
        return self.pipeline.weak_name if self.route == "weak" else self.pipeline.strong_name

    def __iter__(self) -> Iterator[str]:
        error: str | None = None
        try:
            if self.first is not None:
                self.text_parts.append(self.first)
                yield self.first
            while True:
                try:
                    piece = next(self.rest)
                except StopIteration as stop:
                    if stop.value is not None:
                        self.usage = _stream_result(stop.value)
                    break
                self.text_parts.append(piece)
                yield piece
        except BackendError as exc:
            error = f"{exc.cause}: {exc}"
            raise
        except GeneratorExit:
            error = "client_disconnected"
            raise
        except KeyboardInterrupt:  # Ctrl-C in the CLI while the model generates
            error = "interrupted"
            raise
        finally:
            self._finish(error)

    def close(self, error: str = "client_disconnected") -> None:
        """Ends the stream (early if the client is gone, or the user pressed Ctrl-C: `error` says which): releases
        the backend and records what was produced. A stream already finished is recorded already, and stays so."""
        closer = getattr(self.rest, "close", None)
        if closer:
            try:
                closer()
            except ValueError:  # still running in another thread; it ends on its own
                pass
        self._finish(error)

    def _finish(self, error: str | None) -> None:
        if self.record is not None:
            return
        usage = self.usage
        if usage is None:  # cut short: the prompt was read whole; count what was produced (a piece is about a token)
            prompt = prompt_token_estimate(self.attempt.backend, self.job.messages)
            usage = StreamResult(prompt, len(self.text_parts), "stop", usage_estimated=True)
        self.finish_reason = usage.finish_reason or "stop"
        seconds = time.perf_counter() - self.began
        draft = self.job.draft
        if draft is not None and self.route == "weak":  # the held draft: its generation time, not the handing out
            seconds = draft.seconds
        self.record = self.pipeline.record(
            self.job, Outcome(self.route, self.reason, usage, seconds, error, self.cached)
        )
        self.stored = self.pipeline._write_settled(self.record, self.attempt)
        if error is None and self.cached is None:
            self.pipeline._cache_store(self.job, self.text, self.finish_reason, self.record)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


__all__ = [
    "Answer",
    "AnswerFailed",
    "ClientGone",
    "Attempt",
    "Draft",
    "Job",
    "Outcome",
    "Pipeline",
    "Plan",
    "PrivateDataRefused",
    "Recorder",
    "StreamingAnswer",
]
