"""Usage totals over decision records: one copy for the device CLI, the cloud `/v1/usage` and the tests.

Sums use `math.fsum`, so a summary does not depend on the order the records came in
(the device log and DynamoDB return them in different orders).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from hybrid_router.decision import DecisionRecord, is_fallback


class UsageTotals(BaseModel):
    """Totals over a set of decisions.

    `strong_cost_usd` is what the same requests would have cost had all gone to the strong model;
    `saving_usd` = `strong_cost_usd` - `cost_usd`; `saving_share` is that saving as a share of `strong_cost_usd`.
    Cascade mode: `drafts` local drafts were made, `escalations` of them were discarded for the strong model;
    `escalation_cost_usd` is what the escalated requests cost, `discarded_draft_ms` the time their drafts took.
    Privacy: `private` requests carried personal data or secrets (any kind in `privacy_kinds`), and
    `privacy_kinds` counts the requests per kind found (a request with two kinds counts in both).
    Conversations: `conversations` distinct conversation keys among the requests, `affinity` requests the
    conversation kept strong where the router alone would have answered locally (reason `affinity:strong`).
    Answer cache: `cache_hits` requests were answered from it (reason `cache:<kind>`), and `cache_saving_usd` is
    what their strong answers cost when first paid (part of `saving_usd`).
    """

    requests: int = 0
    strong: int = 0
    weak: int = 0
    fallbacks: int = 0
    errors: int = 0
    strong_share: float = 0.0
    cost_usd: float = 0.0
    strong_cost_usd: float = 0.0
    saving_usd: float = 0.0
    saving_share: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens: int = 0
    energy_wh: float = 0.0
    mean_router_latency_ms: float = 0.0
    drafts: int = 0
    escalations: int = 0
    escalation_cost_usd: float = 0.0
    discarded_draft_ms: float = 0.0
    private: int = 0
    privacy_kinds: dict[str, int] = {}
    conversations: int = 0
    affinity: int = 0
    cache_hits: int = 0
    cache_saving_usd: float = 0.0
    first_at: str | None = None
    last_at: str | None = None


class UsageSummary(BaseModel):
    totals: UsageTotals
    by_day: dict[str, UsageTotals]
    by_route: dict[str, UsageTotals]

    @classmethod
    def from_records(cls, records: Iterable[DecisionRecord | Mapping[str, Any]]) -> UsageSummary:
        totals = _Accumulator()
        by_day: dict[str, _Accumulator] = {}
        by_route: dict[str, _Accumulator] = {}
        for item in records:
            record = item if isinstance(item, DecisionRecord) else DecisionRecord.model_validate(item)
            totals.add(record)
            by_day.setdefault(record.day, _Accumulator()).add(record)
            by_route.setdefault(record.route, _Accumulator()).add(record)
        return cls(
            totals=totals.totals(),
            by_day={day: by_day[day].totals() for day in sorted(by_day)},
            by_route={route: by_route[route].totals() for route in sorted(by_route)},
        )


def _records(records: Iterable[DecisionRecord | Mapping[str, Any]]) -> Iterable[DecisionRecord]:
    for item in records:
        yield item if isinstance(item, DecisionRecord) else DecisionRecord.model_validate(item)


def totals_by(
    records: Iterable[DecisionRecord | Mapping[str, Any]], key: Callable[[DecisionRecord], str | None]
) -> dict[str, UsageTotals]:
    """UsageTotals per group of records (`key`: the group of a record; None leaves it out), groups sorted."""
    groups: dict[str, _Accumulator] = {}
    for record in _records(records):
        group = key(record)
        if group is not None:
            groups.setdefault(group, _Accumulator()).add(record)
    return {name: groups[name].totals() for name in sorted(groups)}


def percentile(values: Iterable[float], q: float) -> float:
    """Linear-interpolation percentile (q in 0..100); 0.0 when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class _Accumulator:
    requests: int = 0
    strong: int = 0
    fallbacks: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: list[float] = field(default_factory=list)
    strong_cost: list[float] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    router_latency: list[float] = field(default_factory=list)
    drafts: int = 0
    escalations: int = 0
    escalation_cost: list[float] = field(default_factory=list)
    discarded_draft_ms: list[float] = field(default_factory=list)
    private: int = 0
    privacy_kinds: Counter[str] = field(default_factory=Counter)
    conversations: set[str] = field(default_factory=set)
    affinity: int = 0
    cache_hits: int = 0
    cache_saving: list[float] = field(default_factory=list)
    first_at: str | None = None
    last_at: str | None = None

    def add(self, record: DecisionRecord) -> None:
        self.requests += 1
        self.strong += record.route == "strong"
        self.fallbacks += is_fallback(record.reason)
        self.errors += record.status == "error"
        self.prompt_tokens += record.prompt_tokens
        self.completion_tokens += record.completion_tokens
        self.cost.append(record.cost_usd)
        self.strong_cost.append(record.strong_cost_usd)
        self.energy.append(record.energy_wh)
        self.router_latency.append(record.router_latency_ms)
        if record.confidence is not None:
            self.drafts += 1
        if record.escalated:
            self.escalations += 1
            self.escalation_cost.append(record.cost_usd)
            self.discarded_draft_ms.append(record.draft_latency_ms if record.route == "strong" else 0.0)
        self.private += bool(record.privacy_kinds)
        self.privacy_kinds.update(set(record.privacy_kinds))
        if record.conversation_id is not None:
            self.conversations.add(record.conversation_id)
        self.affinity += record.reason.startswith("affinity:")
        if record.reason.startswith("cache:"):
            self.cache_hits += 1
            self.cache_saving.append(record.saving_usd)
        if self.first_at is None or record.created_at < self.first_at:
            self.first_at = record.created_at
        if self.last_at is None or record.created_at > self.last_at:
            self.last_at = record.created_at

    def totals(self) -> UsageTotals:
        cost = math.fsum(self.cost)
        strong_cost = math.fsum(self.strong_cost)
        saving = strong_cost - cost
        return UsageTotals(
            requests=self.requests,
            strong=self.strong,
            weak=self.requests - self.strong,
            fallbacks=self.fallbacks,
            errors=self.errors,
            strong_share=self.strong / self.requests if self.requests else 0.0,
            cost_usd=cost,
            strong_cost_usd=strong_cost,
            saving_usd=saving,
            saving_share=saving / strong_cost if strong_cost > 0 else 0.0,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            tokens=self.prompt_tokens + self.completion_tokens,
            energy_wh=math.fsum(self.energy),
            mean_router_latency_ms=math.fsum(self.router_latency) / self.requests if self.requests else 0.0,
            drafts=self.drafts,
            escalations=self.escalations,
            escalation_cost_usd=math.fsum(self.escalation_cost),
            discarded_draft_ms=math.fsum(self.discarded_draft_ms),
            private=self.private,
            privacy_kinds=dict(sorted(self.privacy_kinds.items())),
            conversations=len(self.conversations),
            affinity=self.affinity,
            cache_hits=self.cache_hits,
            cache_saving_usd=math.fsum(self.cache_saving),
            first_at=self.first_at,
            last_at=self.last_at,
        )
