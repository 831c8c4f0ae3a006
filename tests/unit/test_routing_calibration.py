"""Threshold-for-share from a quantile table, and prompt clean-up (no router file needed)."""

from __future__ import annotations

import numpy as np
import pytest

from hybrid_router.routing.calibration import score_quantiles, threshold_for_share
from hybrid_router.routing.text import MAX_CHARS, clean_prompt, cut_chars


def test_threshold_for_share_hits_the_share_on_the_reference_set() -> None:
    scores = np.random.default_rng(0).beta(2, 5, size=5000)
    quantiles = score_quantiles(scores)
    for share in (0.05, 0.1, 0.3, 0.5, 0.8):
        t = threshold_for_share(quantiles, share)
        assert np.mean(scores >= t) == pytest.approx(share, abs=0.01)
    assert threshold_for_share(quantiles, 1.0) == 0.0
    assert threshold_for_share(quantiles, 0.0) > max(scores)


def test_threshold_for_share_is_monotone_with_flat_quantiles() -> None:
    quantiles = [0.1] * 50 + [0.5] * 51
    thresholds = [threshold_for_share(quantiles, s) for s in np.linspace(0, 1, 101)]
    assert all(a >= b for a, b in zip(thresholds, thresholds[1:], strict=False))


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        threshold_for_share([0.1, 0.2], -0.1)
    with pytest.raises(ValueError):
        threshold_for_share([0.1, 0.2], float("nan"))
    with pytest.raises(ValueError):
        score_quantiles([])


def test_clean_prompt() -> None:
    assert clean_prompt(b"\xff ok") == "\ufffd ok"
    assert clean_prompt("a\ud800b") == "a\ufffdb"
    assert clean_prompt("😀") == "😀"
    with pytest.raises(TypeError):
        clean_prompt(3)  # type: ignore[arg-type]


def test_cut_chars_keeps_head_and_tail() -> None:
    text = "H" * MAX_CHARS + "T" * MAX_CHARS
    cut = cut_chars(text)
    assert len(cut) < MAX_CHARS + 10 and cut.startswith("H") and cut.endswith("T")
    assert cut_chars("short") == "short"
