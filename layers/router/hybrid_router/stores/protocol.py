"""What every decision store offers for one device's decisions: SQLite on the device (DecisionLog) and DynamoDB in
the cloud (DynamoDecisionStore.for_device) answer the same calls with the same types, so usage, the dashboard and
experiment reports are computed by one copy of the code from either."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import NamedTuple, Protocol

from hybrid_router.decision import DecisionRecord
from hybrid_router.feedback import Scale
from hybrid_router.usage import UsageSummary

When = str | date | datetime | None


class RatingLike(Protocol):
    """A user's rating of one decision: `rating` on its `scale` (1..5 stars, or -1/+1 thumbs)."""

    @property
    def rating(self) -> int: ...

    @property
    def scale(self) -> Scale: ...


class Rating(NamedTuple):
    rating: int
    scale: Scale


class DecisionStore(Protocol):
    """One device's decisions and its users' ratings of them."""

    def records(self, since: When = None, until: When = None) -> list[DecisionRecord]:
        """Decisions created at or after `since` and before `until`, oldest first."""
        ...

    def ratings(self) -> Mapping[str, RatingLike]:
        """Every rating, by decision id."""
        ...

    def usage(self, since: When = None, until: When = None) -> UsageSummary: ...


__all__ = ["DecisionStore", "Rating", "RatingLike", "When"]
