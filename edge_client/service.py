"""The edge routing service: score, decide, apply the budget, answer (with fallbacks), log the decision.

Plain classes, no HTTP: the local server and the CLI both drive this. Every request writes one
DecisionRecord to the decision log before its answer is handed back (for a stream: when it ends or breaks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from hybrid_router.backends.base import INPUT_REJECTED, BackendError, ChatBackend, StreamResult
from hybrid_router.budget import BudgetExceeded, Reservation, SpendLedger
from hybrid_router.costs import CostModel
from hybrid_router.decision import DecisionRecord
from hybrid_router.openai_schema import ChatCompletionRequest
from hybrid_router.routing import RouterSpec, parse_router_model
from hybrid_router.stores.sqlite_log import DecisionLog, DecisionLogError
from hybrid_router.ulid import new_ulid

from edge_client.config import Settings
from edge_client.routing_source import RouteSource, RoutingError, UnknownRouterKind

log = logging.getLogger("hybrid_router.edge")


class UnknownModelError(ValueError):
    def __init__(self, model: str, valid: list[str], why: str | None = None):
        super().__init__(f"unknown model {model!r}{f' ({why})' if why else ''}; valid models: {', '.join(valid)} "
                         "(or router-<kind>-<threshold>, e.g. router-mf-0.2)")
        self.model = model
        self.valid = valid


@dataclass
class Plan:
    """The decision for one request, before any model runs."""

    decision_id: str
    requested_model: str
    route: str
    reason: str
    score: float
    threshold: float
    router_id: str
    router_version: str
    router_latency_ms: float
    remote: bool = False


@dataclass
class Answer:
    text: str
    finish_reason: str
    record: DecisionRecord


@dataclass
class _Attempt:
    route: str
    backend: ChatBackend
    reservation: Reservation | None = None


class EdgeService:
    def __init__(self, settings: Settings, weak: ChatBackend, strong: ChatBackend | None,
                 route_source: RouteSource | None, decision_log: DecisionLog, costs: CostModel | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.settings = settings
        self.weak = weak
        self.strong = strong
        self.route_source = route_source
        self.log = decision_log
        self.costs = costs or CostModel.default()
        self.clock = clock
        self.budget = SpendLedger(decision_log.spend_since, clock, settings.daily_cap_usd, settings.monthly_cap_usd,
                                  self.costs)

    # names

    @property
    def weak_name(self) -> str:
        return self.weak.name

    @property
    def strong_name(self) -> str:
        return self.strong.name if self.strong is not None else (self.settings.strong_model or "strong")

    def example_router_name(self) -> str | None:
        if self.route_source is None or self.route_source.kind == "remote":
            return None
        threshold = self.settings.threshold
        if threshold is None:
            threshold = self.route_source.default_threshold
        return f"router-{self.route_source.kind}-{threshold:.3f}"

    def model_names(self) -> list[str]:
        names = ["router"]
        example = self.example_router_name()
        if example:
            names.append(example)
        names.append(self.weak_name)
        if self.strong_name not in names:
            names.append(self.strong_name)
        return names

    def serves(self, model: str) -> bool:
        """Whether `model` names something a chat request may ask for (GET /v1/models/{model})."""
        if model in (self.weak_name, self.strong_name):
            return True
        spec = parse_router_model(model)
        if spec is None or self.route_source is None:
            return False
        router_for = getattr(self.route_source, "router_for", None)
        if router_for is None:  # remote routing: the cloud decides which router names it serves
            return True
        try:
            router_for(spec.kind)
        except UnknownRouterKind:
            return False
        return True

    # deciding

    def _budget_problem(self, request: ChatCompletionRequest) -> BudgetExceeded | None:
        """Whether a strong answer to this request could pass a cap now (the attempt reserves for real)."""
        try:
            self.budget.reserve(self._messages(request), request.token_limit(self.settings.max_tokens)).release()
        except BudgetExceeded as exc:
            return exc
        return None

    def plan(self, request: ChatCompletionRequest) -> Plan:
        """Decides the route (raises UnknownModelError, RoutingError)."""
        model = request.model
        decision_id = new_ulid()
        forced = {self.weak_name: "weak", self.strong_name: "strong"}.get(model)
        spec: RouterSpec | None = None
        if forced is None:
            spec = parse_router_model(model)
            if spec is None or self.route_source is None:
                raise UnknownModelError(model, self.model_names())
        if self.route_source is None:
            plan = Plan(decision_id, model, forced or "weak", "forced", 0.0, 0.0, "none", "none", 0.0)
        elif forced is not None and self.route_source.kind == "remote":
            plan = Plan(decision_id, model, forced, "forced", 0.0, self.route_source.default_threshold,
                        "remote", "unknown", 0.0, remote=True)
        else:
            try:
                scored = self.route_source.decide(request.last_user_text(), spec or RouterSpec(name="router"),
                                                  self.settings.threshold, self.settings.strong_share)
            except UnknownRouterKind as exc:  # router-<kind> of a kind not installed: as unknown as any name
                raise UnknownModelError(model, self.model_names(), why=str(exc)) from None
            plan = Plan(decision_id, model, forced or scored.route, "forced" if forced else "routed",
                        scored.score, scored.threshold, scored.router_id, scored.router_version,
                        scored.latency_ms, remote=self.route_source.kind == "remote")
        if plan.route == "strong":
            over = self._budget_problem(request)
            if over is not None:
                plan.route, plan.reason = "weak", over.reason
        return plan

    # answering

    def _attempts(self, plan: Plan) -> tuple[list[_Attempt], str]:
        """Backends to try in order, and the reason to log if the first one answers."""
        weak = _Attempt("weak", self.weak)
        strong = _Attempt("strong", self.strong) if self.strong is not None else None
        if plan.route == "strong":
            return ([strong, weak], plan.reason) if strong else ([weak], "fallback:strong_not_configured")
        if plan.reason.startswith("budget"):
            return [weak], plan.reason  # over the cap: never spend on strong, not even as a fallback
        return ([weak, strong] if strong else [weak]), plan.reason

    def _record(self, plan: Plan, request: ChatCompletionRequest, route: str, reason: str, prompt_tokens: int,
                completion_tokens: int, generation_s: float, error: str | None = None,
                queue_s: float = 0.0) -> DecisionRecord:
        """`generation_s` excludes `queue_s` (waiting for a busy local model): cost and energy are generation's."""
        costs = self.costs
        generation_s = max(generation_s - queue_s, 0.0)
        strong_cost = costs.strong_cost_usd(prompt_tokens, completion_tokens)
        overhead = costs.cloud_overhead_usd() if plan.remote else 0.0
        if error is not None and completion_tokens == 0:  # nothing was delivered: nothing to pay
            cost, energy = 0.0, 0.0
        elif route == "strong":  # delivered tokens are paid for, even when the stream broke off after them
            cost, energy = strong_cost, 0.0
        else:
            cost, energy = costs.weak_cost_usd(generation_s) + overhead, costs.weak_energy_wh(generation_s)
        if error is not None:  # a failed or cut answer saves nothing against always-strong
            strong_cost = cost
        return DecisionRecord(
            decision_id=plan.decision_id, tenant_id=self.settings.tenant_id, device_id=self.settings.device_id,
            router_id=plan.router_id, router_version=plan.router_version, score=min(max(plan.score, 0.0), 1.0),
            threshold=min(max(plan.threshold, 0.0), 1.0), route=route, reason=reason,
            weak_model=self.weak_name, strong_model=self.strong_name,
            model_used=self.weak_name if route == "weak" else self.strong_name,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
            router_latency_ms=plan.router_latency_ms, generation_latency_ms=generation_s * 1000.0,
            queue_latency_ms=queue_s * 1000.0,
            cost_usd=cost, strong_cost_usd=strong_cost, energy_wh=energy,
            status="error" if error else "ok", error=error,
            prompt=request.last_user_text() if self.settings.store_prompts else None,
        )

    def _reserve(self, attempt: _Attempt, request: ChatCompletionRequest, options: dict) -> None:
        """A strong attempt first reserves its worst-case cost (raises BudgetExceeded); the weak one costs none."""
        if attempt.route == "strong":
            attempt.reservation = self.budget.reserve(self._messages(request), options["max_tokens"])

    @staticmethod
    def _settle(attempts: list[_Attempt]) -> None:
        for attempt in attempts:
            if attempt.reservation is not None:
                attempt.reservation.release()

    def _write(self, record: DecisionRecord) -> None:
        """Fail closed: an answer whose decision cannot be logged (disk full, read-only) is not returned.

        DecisionLogError reaches the caller (HTTP 507 from the server, one error line from the CLI), so no
        decision ever goes unrecorded. A stream that already started is cut with that error instead.
        """
        try:
            self.log.append(record)
        except DecisionLogError:
            log.error("decision %s not logged; the answer is withheld", record.decision_id)
            raise

    @staticmethod
    def _messages(request: ChatCompletionRequest) -> list[dict]:
        return [{"role": m.role, "content": m.text()} for m in request.messages]

    def _generation_options(self, request: ChatCompletionRequest, plan: Plan) -> dict:
        """Keyword arguments of ChatBackend.complete/stream for this request."""
        return {"max_tokens": request.token_limit(self.settings.max_tokens),
                "temperature": request.temperature or 0.0, "decision_id": plan.decision_id,
                "stop": request.stop_list(), "top_p": request.top_p}

    def complete(self, request: ChatCompletionRequest, plan: Plan | None = None) -> Answer:
        plan = plan or self.plan(request)
        messages, options = self._messages(request), self._generation_options(request, plan)
        attempts, reason = self._attempts(plan)
        errors: list[BackendError] = []
        started = time.perf_counter()
        try:
            for attempt in attempts:
                try:
                    self._reserve(attempt, request, options)
                except BudgetExceeded as exc:
                    reason = exc.reason if attempt is attempts[0] else reason
                    continue
                try:
                    _load(attempt.backend)
                    began = time.perf_counter()
                    completion = attempt.backend.complete(messages, **options)
                except BackendError as exc:
                    errors.append(exc)
                    reason = f"fallback:{exc.cause}"
                    if exc.cause == INPUT_REJECTED:
                        break
                    continue
                record = self._record(plan, request, attempt.route, reason, completion.prompt_tokens,
                                      completion.completion_tokens, time.perf_counter() - began,
                                      queue_s=completion.queue_s)
                self._write(record)
                return Answer(completion.text, completion.finish_reason, record)
            raise self._give_up(plan, request, errors, time.perf_counter() - started)
        finally:
            self._settle(attempts)

    def _give_up(self, plan: Plan, request: ChatCompletionRequest, errors: list[BackendError],
                 seconds: float) -> BackendError:
        """Logs the failed request and returns the error to raise. A strong model that refused the input (e.g. a
        prompt over its context) ends the attempts: the request is wrong, not the cloud down, and the local model,
        with a smaller context, would not be a fallback but a silent different answer (README: fallbacks are for
        a cloud that is unreachable, slow or failing)."""
        message = "; ".join(f"{e.cause}: {e}" for e in errors) or "no backend configured"
        route = plan.route
        reason = f"fallback:{errors[0].cause}" if len(errors) > 1 else plan.reason  # why it fell back
        self._write(self._record(plan, request, route, reason, 0, 0, seconds, error=message[:500]))
        last = errors[-1] if errors else BackendError(message, cause="no_backend", status_code=503)
        lead = "no model could answer"
        if last.cause == INPUT_REJECTED:
            lead = "the strong model refused this request" + ("" if len(errors) > 1 else ", so it was not retried "
                                                               "on the local model")
        failed = BackendError(f"{lead}: {message}", cause=last.cause,
                              status_code=last.status_code if last.status_code >= 400 else 502)
        return failed

    def stream(self, request: ChatCompletionRequest, plan: Plan | None = None) -> "StreamingAnswer":
        """Starts the answer: fallbacks happen before the first piece, so the route is known up front."""
        plan = plan or self.plan(request)
        messages, options = self._messages(request), self._generation_options(request, plan)
        attempts, reason = self._attempts(plan)
        errors: list[BackendError] = []
        started = time.perf_counter()
        handed_over: _Attempt | None = None
        try:
            for attempt in attempts:
                try:
                    self._reserve(attempt, request, options)
                except BudgetExceeded as exc:
                    reason = exc.reason if attempt is attempts[0] else reason
                    continue
                try:
                    _load(attempt.backend)
                except BackendError as exc:
                    errors.append(exc)
                    reason = f"fallback:{exc.cause}"
                    continue
                began = time.perf_counter()
                pieces = attempt.backend.stream(messages, **options)
                try:
                    first = next(pieces)
                except StopIteration as stop:
                    handed_over = attempt
                    return StreamingAnswer(self, plan, request, attempt, reason, began, None, iter(()),
                                           _stream_result(stop.value))
                except BackendError as exc:
                    errors.append(exc)
                    reason = f"fallback:{exc.cause}"
                    if exc.cause == INPUT_REJECTED:
                        break
                    continue
                except KeyboardInterrupt:  # Ctrl-C before the first piece (a long prompt being read): still logged
                    self._write(self._record(plan, request, attempt.route, reason, 0, 0, time.perf_counter() - began,
                                             error="interrupted"))
                    raise
                handed_over = attempt
                return StreamingAnswer(self, plan, request, attempt, reason, began, first, pieces, None)
            raise self._give_up(plan, request, errors, time.perf_counter() - started)
        finally:  # the attempt that streams settles when its record is written (StreamingAnswer._finish)
            self._settle([a for a in attempts if a is not handed_over])


def _stream_result(value: StreamResult | tuple | None) -> StreamResult | None:
    """A stream's return value as a StreamResult (a backend may return a bare (prompt, completion) pair)."""
    if value is None or isinstance(value, StreamResult):
        return value
    return StreamResult(*value)


def _load(backend: ChatBackend) -> None:
    """Load a lazy local model before the clock starts: generation latency and energy exclude loading."""
    if getattr(backend, "loaded", True) is False:
        backend.load()


@dataclass
class StreamingAnswer:
    """Text pieces of an answer in progress. Iterating to the end (or closing) writes the decision record."""

    service: EdgeService
    plan: Plan
    request: ChatCompletionRequest
    attempt: _Attempt
    reason: str
    began: float
    first: str | None
    rest: Iterator[str]
    usage: StreamResult | None
    record: DecisionRecord | None = None
    finish_reason: str = "stop"
    text_parts: list[str] = field(default_factory=list)

    @property
    def route(self) -> str:
        return self.attempt.route

    @property
    def model(self) -> str:
        return self.service.weak_name if self.route == "weak" else self.service.strong_name

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
        the backend and logs what was produced. A stream already finished is logged already, and stays as it is."""
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
        if usage is None:  # cut short: count what was produced (one piece is about one token)
            usage = StreamResult(0, len(self.text_parts), "stop")
        self.finish_reason = usage.finish_reason or "stop"
        self.record = self.service._record(self.plan, self.request, self.route, self.reason, int(usage.prompt_tokens),
                                           int(usage.completion_tokens), time.perf_counter() - self.began,
                                           error=error, queue_s=usage.queue_s)
        try:
            self.service._write(self.record)
        finally:
            self.service._settle([self.attempt])

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


__all__ = ["Answer", "EdgeService", "Plan", "RoutingError", "StreamingAnswer", "UnknownModelError"]
