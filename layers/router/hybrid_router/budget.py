"""Spend caps that hold under concurrency: a strong call reserves its worst-case cost before it starts.

Checking "spent so far < cap" when a request is planned lets every request that is planned before the
first one finishes through: ten concurrent strong calls once spent ten times a tiny cap. Here each strong
attempt first reserves what it could cost at most (its prompt at one token per byte plus `max_tokens`, at the
strong price); a reservation is refused when what is spent plus what is reserved would pass a cap. The
reservation is released once the request's record (with its real cost) is written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from hybrid_router.costs import CostModel
from hybrid_router.decision import BUDGET_PREFIX

SpendSince = Callable[[datetime], float]
# Chat-template tokens around each message (role markers, separators), counted generously.
TEMPLATE_TOKENS_PER_MESSAGE = 16


def _start_of_day(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _start_of_month(now: datetime) -> datetime:
    return _start_of_day(now).replace(day=1)


def worst_case_prompt_tokens(messages: list[dict]) -> int:
    """An upper bound on the prompt's tokens for any byte-level tokenizer: one token per UTF-8 byte at most."""
    text_bytes = sum(len(str(m.get("content") or "").encode("utf-8", "surrogatepass")) for m in messages)
    return text_bytes + TEMPLATE_TOKENS_PER_MESSAGE * max(len(messages), 1)


@dataclass(frozen=True)
class Cap:
    name: str  # "daily" or "monthly": the record's reason is budget:<name>
    limit_usd: float
    window_start: Callable[[datetime], datetime]


@dataclass
class Reservation:
    amount_usd: float
    _ledger: SpendLedger | None = field(default=None, repr=False)

    def release(self) -> None:
        """Idempotent: the request's record is written, so its real cost now counts instead."""
        ledger, self._ledger = self._ledger, None
        if ledger is not None:
            ledger._release(self)


class BudgetExceeded(Exception):
    def __init__(self, cap: Cap, spent: float, reserved: float, needed: float):
        super().__init__(
            f"the {cap.name} cap of ${cap.limit_usd:g} would be passed: ${spent:.6f} spent, "
            f"${reserved:.6f} reserved by requests in flight, ${needed:.6f} needed at most"
        )
        self.cap = cap

    @property
    def reason(self) -> str:
        return f"{BUDGET_PREFIX}{self.cap.name}"


class SpendLedger:
    """The caps of one device and the reservations of the requests in flight (one lock for both)."""

    def __init__(
        self,
        spend_since: SpendSince,
        clock: Callable[[], datetime],
        daily_cap_usd: float | None = None,
        monthly_cap_usd: float | None = None,
        costs: CostModel | None = None,
    ):
        self._spend_since = spend_since
        self._clock = clock
        self.costs = costs or CostModel.default()
        self.caps = [
            cap
            for cap in (
                Cap("daily", daily_cap_usd, _start_of_day) if daily_cap_usd is not None else None,
                Cap("monthly", monthly_cap_usd, _start_of_month) if monthly_cap_usd is not None else None,
            )
            if cap is not None
        ]
        self._reserved: list[Reservation] = []
        self._lock = threading.Lock()

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return sum(r.amount_usd for r in self._reserved)

    def worst_case_usd(self, messages: list[dict], max_tokens: int) -> float:
        return self.costs.strong_cost_usd(worst_case_prompt_tokens(messages), max_tokens)

    def reserve(self, messages: list[dict], max_tokens: int) -> Reservation:
        """Reserves the strong call's worst case; raises BudgetExceeded naming the cap it would pass."""
        needed = self.worst_case_usd(messages, max_tokens)
        reservation = Reservation(needed)
        if not self.caps:
            return reservation
        with self._lock:
            now = self._clock()
            reserved = sum(r.amount_usd for r in self._reserved)
            for cap in self.caps:
                spent = self._spend_since(cap.window_start(now))
                if spent + reserved + needed > cap.limit_usd:
                    raise BudgetExceeded(cap, spent, reserved, needed)
            reservation._ledger = self
            self._reserved.append(reservation)
        return reservation

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            self._reserved = [r for r in self._reserved if r is not reservation]
