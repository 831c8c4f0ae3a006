"""Score quantiles on a reference prompt set -> the threshold that sends a given share of traffic to the strong model."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def score_quantiles(scores: Sequence[float] | np.ndarray, n: int = 101) -> list[float]:
    """n quantiles at probabilities 0, 1/(n-1), ..., 1."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("cannot calibrate on an empty reference set")
    return [float(q) for q in np.quantile(values, np.linspace(0.0, 1.0, n))]


def threshold_for_share(quantiles: Sequence[float], share: float) -> float:
    """The threshold t such that about `share` of reference prompts score >= t (non-increasing in share).

    share 0 gives a threshold just above the highest reference score (clipped to 1.0); share 1 gives 0.0.
    """
    share = float(share)
    if not 0.0 <= share <= 1.0 or share != share:
        raise ValueError(f"strong share must be in [0, 1], got {share}")
    q = np.maximum.accumulate(np.asarray(quantiles, dtype=np.float64))
    if q.size < 2:
        raise ValueError("calibration needs at least 2 quantiles")
    if share <= 0.0:
        return float(min(1.0, np.nextafter(q[-1], np.inf)))
    if share >= 1.0:
        return 0.0
    probs = np.linspace(0.0, 1.0, q.size)
    return float(np.clip(np.interp(1.0 - share, probs, q), 0.0, 1.0))
