"""A user's rating of one answer, keyed by its decision id: the cloud API's body, the device log's row,
and a training label.

Ratings are 1..5 stars or -1/+1 thumbs. The two scales share the value 1 (one star, or thumbs up), so a rating
of 1 must say its `scale`; for any other rating the scale follows from the value. Every accepted request carries
its resolved scale, so the device log, the cloud and a training row all know what the rating meant.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from hybrid_router.openai_schema import TextOnly
from hybrid_router.ulid import PATTERN as ULID_PATTERN

Scale = Literal["stars", "thumbs"]
_SCALES: dict[str, tuple[int, ...]] = {"stars": (1, 2, 3, 4, 5), "thumbs": (-1, 1)}


class FeedbackRequest(TextOnly):
    # The schema states the rule of _rating_scale: a rating of 1 names its scale.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "if": {"required": ["rating"], "properties": {"rating": {"const": 1}}},
            "then": {"required": ["scale"], "properties": {"scale": {"type": "string"}}},
        },
    )

    decision_id: str = Field(min_length=26, max_length=26, pattern=ULID_PATTERN, description="a ULID")
    rating: StrictInt = Field(
        description="1..5 stars, or -1 / +1 thumbs", json_schema_extra={"enum": [-1, 1, 2, 3, 4, 5]}
    )
    scale: Scale | None = Field(default=None, description="stars or thumbs: needed for a rating of 1, else inferred")
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _rating_scale(self) -> FeedbackRequest:
        if not any(self.rating in ratings for ratings in _SCALES.values()):
            raise ValueError("rating must be 1..5 (stars) or -1/+1 (thumbs)")
        self.scale = rating_scale(self.rating, self.scale)
        return self


class FeedbackResponse(BaseModel):
    decision_id: str
    rating: int
    scale: Scale | None = None
    comment: str | None = None
    created_at: str


def rating_scale(rating: int, scale: str | None = None) -> Scale:
    """The scale of a valid rating: -1 is thumbs, 2..5 are stars, 1 is whichever `scale` says.
    ValueError when `scale` is needed but missing, or does not fit the rating."""
    if scale is None:
        if rating == 1:
            raise ValueError("rating 1 is ambiguous (one star, or thumbs up): say which scale, stars or thumbs")
        return "thumbs" if rating == -1 else "stars"
    if scale not in _SCALES:
        raise ValueError(f"scale must be 'stars' or 'thumbs', got {scale!r}")
    if rating not in _SCALES[scale]:
        raise ValueError(f"rating {rating} is not on the {scale} scale ({'1..5' if scale == 'stars' else '-1/+1'})")
    return scale  # type: ignore[return-value]


def unit_score(rating: int, scale: Scale) -> float:
    """The rating on [0, 1], as training files score answers: stars (r - 1) / 4, thumbs -1 -> 0, +1 -> 1."""
    rating_scale(rating, scale)
    return (rating - 1) / 4 if scale == "stars" else (rating + 1) / 2
