"""The operating point set by a quality target on the deployed local model, with a finite-sample guarantee.

Input: labelled rows of the local model that actually answers, each a router score and the local model's own
outcome (1 right, 0 wrong; from `hybrid-router label`). Output: the threshold t (strong when score >= t) such that,
with probability at least `confidence` over the labelled rows, the local model fails on at most 1 - target of the
prompts it keeps (score < t), for prompts drawn like the labelled ones.

Method (Learn-then-Test with fixed-sequence testing, Angelopoulos et al. 2021): the candidate thresholds keep the
k lowest-scored rows, for k on a grid fixed by the row count, the target and the confidence alone (never by the
outcomes). From the smallest k upwards, each threshold is tested: it passes when the exact one-sided Clopper-Pearson
upper bound on the failure rate among the rows it keeps is at most 1 - target (equivalently, the binomial p-value
P(Binomial(k, 1 - target) <= failures) is at most 1 - confidence). The scan stops at the first threshold that fails;
the chosen threshold is the last one that passed. Fixed-sequence testing needs no correction for the number of
thresholds tried. (The thresholds themselves sit between the rows' scores; tests/unit/test_operating_point.py checks
by simulation that the coverage holds.) When the first one fails, no threshold meets the target: the threshold is
0 (every prompt goes to the strong model) and the operating point says so.

What it assumes: future prompts are like the labelled ones (exchangeable with them: same kinds of tasks, in the same
proportions), and the labels judge answers as the user would. It says nothing about kinds of prompts the labels do
not cover. numpy and the standard library only (no scipy).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "hybrid-router-operating-point"
FORMAT_VERSION = 1
FILE_NAME = "operating_point.json"
PACKAGED_PATH = Path(__file__).resolve().parent.parent / "config" / FILE_NAME
DEFAULT_CONFIDENCE = 0.95
# The fixed sequence: at most MAX_TESTS thresholds, the first keeping START_SHARE of the rows (or the fewest that can
# meet the target, if more). Tests on a handful of rows have little power and would end the scan early; a short,
# coarse sequence loses less to chance (measured in simulations: tests/unit/test_operating_point.py).
MAX_TESTS = 20
START_SHARE = 0.05
LABEL_DIGITS = 7


class OperatingPointError(ValueError):
    """Labelled rows or an operating-point file that cannot give a threshold (the message says why)."""


# ------------------------------------------------------------------------------------------ exact binomial


def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))))


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), exact up to float rounding (log-space sum of the pmf)."""
    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"need n >= 0 and p in [0, 1], got n={n}, p={p}")
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    lf = _log_factorials(n)
    i = np.arange(k + 1)
    log_pmf = lf[n] - lf[i] - lf[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
    top = float(log_pmf.max())
    return float(min(1.0, math.exp(top) * np.exp(log_pmf - top).sum()))


def clopper_pearson_upper(failures: int, n: int, confidence: float) -> float:
    """One-sided exact upper confidence bound on a binomial rate: the p with P(Binomial(n, p) <= failures) equal to
    1 - confidence (the beta quantile Beta(failures + 1, n - failures) at `confidence`), by bisection. 1 when n is 0
    or every trial failed."""
    _check_confidence(confidence)
    if not 0 <= failures <= n:
        raise ValueError(f"need 0 <= failures <= n, got {failures} of {n}")
    if failures == n:
        return 1.0
    delta = 1.0 - confidence
    low, high = failures / n, 1.0
    for _ in range(100):
        mid = (low + high) / 2.0
        if binomial_cdf(failures, n, mid) > delta:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return high


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise OperatingPointError(f"confidence must be in (0, 1), got {confidence}")


def _check_target(target: float) -> None:
    if not 0.0 < target < 1.0:
        raise OperatingPointError(f"quality target must be in (0, 1), got {target}")


# ------------------------------------------------------------------------------------------ the threshold


@dataclass(frozen=True)
class Selection:
    """The threshold for one target: how many labelled rows it keeps local, how many of those failed, their bound."""

    threshold: float
    target: float
    confidence: float
    rows: int
    kept: int
    kept_failures: int
    failure_bound: float  # Clopper-Pearson upper bound on the local failure rate among kept prompts (1: none kept)
    met: bool  # some threshold met the target (else threshold 0: everything strong)
    tests: int  # thresholds tested before the scan stopped


def min_rows(target: float, confidence: float) -> int:
    """The fewest kept rows that can meet the target at all (every one of them right)."""
    _check_target(target)
    _check_confidence(confidence)
    return math.ceil(math.log(1.0 - confidence) / math.log(target))


def candidate_counts(rows: int, target: float, confidence: float, max_tests: int = MAX_TESTS) -> list[int]:
    """The fixed sequence: kept-row counts from max(min_rows, START_SHARE of the rows) upwards, at most max_tests of
    them, evenly spaced, ending at `rows`. It depends on the row count, target and confidence only, never on the
    outcomes."""
    start = max(min_rows(target, confidence), math.ceil(rows * START_SHARE))
    if rows < start:
        return []
    counts = np.unique(np.round(np.linspace(start, rows, min(max_tests, rows - start + 1))).astype(int))
    return [int(c) for c in counts]


def _threshold_keeping(sorted_scores: np.ndarray, k: int) -> float | None:
    """A threshold under which exactly the k lowest scores fall (None if a tie makes that impossible)."""
    n = sorted_scores.size
    if k == n:
        return float(min(1.0, np.nextafter(sorted_scores[-1], np.inf)))
    low, high = float(sorted_scores[k - 1]), float(sorted_scores[k])
    if not low < high:
        return None
    return (low + high) / 2.0


def select_threshold(
    scores: Sequence[float] | np.ndarray,
    outcomes: Sequence[int] | np.ndarray,
    target: float,
    confidence: float = DEFAULT_CONFIDENCE,
    max_tests: int = MAX_TESTS,
) -> Selection:
    """The largest threshold, scanned from low to high and stopping at the first that fails, whose Clopper-Pearson
    bound on the local failure rate among kept rows is at most 1 - target. outcomes: 1 the local model was right,
    0 it was wrong."""
    _check_target(target)
    _check_confidence(confidence)
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(outcomes)
    if s.ndim != 1 or s.shape != y.shape:
        raise OperatingPointError("scores and outcomes must be two lists of the same length")
    if s.size == 0:
        raise OperatingPointError("no labelled rows")
    if not np.all(np.isfinite(s)) or s.min() < 0.0 or s.max() > 1.0:
        raise OperatingPointError("scores must be finite numbers in [0, 1]")
    if not np.all((y == 0) | (y == 1)):
        raise OperatingPointError("outcomes must be 0 (wrong) or 1 (right)")
    order = np.argsort(s, kind="stable")
    s, failed = s[order], (y[order] == 0).astype(np.int64)
    cum_failed = np.concatenate(([0], np.cumsum(failed)))
    alpha, delta = 1.0 - target, 1.0 - confidence
    best: tuple[float, int] | None = None
    tests = 0
    for k in candidate_counts(s.size, target, confidence, max_tests):
        t = _threshold_keeping(s, k)
        if t is None:  # tied scores: this k is not a threshold; the next one decides
            continue
        tests += 1
        if binomial_cdf(int(cum_failed[k]), k, alpha) > delta:  # the bound is above 1 - target
            break
        best = (t, k)
    if best is None:
        return Selection(0.0, target, confidence, int(s.size), 0, 0, 1.0, False, tests)
    t, k = best
    fails = int(cum_failed[k])
    return Selection(
        t, target, confidence, int(s.size), k, fails, clopper_pearson_upper(fails, k, confidence), True, tests
    )


# ------------------------------------------------------------------------------------------ the file


@dataclass(frozen=True)
class OperatingPoint:
    """A computed operating point, with what it rests on. `labels` (score, outcome) pairs, sorted by score, let the
    threshold be recomputed for another target or confidence (quality_target, quality_confidence settings)."""

    threshold: float
    quality_target: float
    quality_confidence: float
    met: bool
    rows: int
    kept: int
    kept_failures: int
    failure_bound: float
    families: tuple[str, ...]
    computed_at: str
    router_id: str
    router_version: str
    local_model: str
    labels_file: str
    guarantee: str
    labels: tuple[tuple[float, int], ...] = field(repr=False, default=())

    def matches(self, router_id: str, router_version: str, local_model: str | None = None) -> bool:
        """Computed for this router (and, when named, this local model: another model's outcomes guarantee
        nothing about this one)."""
        same_router = self.router_id == router_id and self.router_version == router_version
        return same_router and (local_model is None or self.local_model == local_model)

    def retarget(self, target: float | None, confidence: float | None) -> OperatingPoint:
        """The same labelled rows at another target and/or confidence (self when both are unchanged or None)."""
        target = self.quality_target if target is None else float(target)
        confidence = self.quality_confidence if confidence is None else float(confidence)
        if target == self.quality_target and confidence == self.quality_confidence:
            return self
        if not self.labels:
            raise OperatingPointError("this operating point holds no labelled rows to recompute a threshold from")
        scores, outcomes = zip(*self.labels, strict=False)
        selection = select_threshold(scores, outcomes, target, confidence)
        return build(
            selection,
            self.families,
            self.router_id,
            self.router_version,
            self.local_model,
            self.labels_file,
            self.labels,
            self.computed_at,
        )

    def summary(self) -> str:
        """One line: the target, the guarantee and what it rests on."""
        rests = (
            f"{self.rows} labelled rows of {self.local_model} in {len(self.families)} task families, "
            f"computed {self.computed_at[:10]} for router {self.router_id} {self.router_version}"
        )
        return f"quality target {self.quality_target:.0%} at {self.quality_confidence:.0%} confidence: " + (
            f"threshold {self.threshold:.4f}; {self.guarantee} (rests on {rests})"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["families"] = list(self.families)
        data["labels"] = [[s, int(o)] for s, o in self.labels]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data}

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        data = self.to_json()
        labels = json.dumps(data.pop("labels"), separators=(",", ":"))
        text = json.dumps({**data, "labels": None}, indent=1).replace('"labels": null', f'"labels": {labels}')
        temporary.write_text(text + "\n", encoding="utf-8")
        temporary.replace(path)
        return path


def guarantee_text(selection: Selection, local_model: str) -> str:
    failure = 1.0 - selection.target
    if not selection.met:
        return (
            f"no threshold meets the target: {local_model} is not right on {selection.target:.0%} of any low-scored "
            f"set of the {selection.rows} labelled prompts with {selection.confidence:.0%} confidence, so every prompt "
            "goes to the strong model"
        )
    return (
        f"with {selection.confidence:.0%} confidence, {local_model} fails on at most {failure:.0%} of the prompts it "
        f"keeps (score < {selection.threshold:.4f}; {selection.kept} of {selection.rows} labelled prompts kept, "
        f"{selection.kept_failures} of them wrong, upper bound {selection.failure_bound:.1%}), for prompts like the "
        "labelled ones"
    )


def build(
    selection: Selection,
    families: Sequence[str],
    router_id: str,
    router_version: str,
    local_model: str,
    labels_file: str,
    labels: Sequence[tuple[float, int]],
    computed_at: str | None = None,
) -> OperatingPoint:
    return OperatingPoint(
        threshold=selection.threshold,
        quality_target=selection.target,
        quality_confidence=selection.confidence,
        met=selection.met,
        rows=selection.rows,
        kept=selection.kept,
        kept_failures=selection.kept_failures,
        failure_bound=selection.failure_bound,
        families=tuple(sorted(set(families))),
        computed_at=computed_at or datetime.now(UTC).isoformat(timespec="seconds"),
        router_id=router_id,
        router_version=router_version,
        local_model=local_model,
        labels_file=labels_file,
        guarantee=guarantee_text(selection, local_model),
        labels=tuple(sorted((float(s), int(o)) for s, o in labels)),
    )


def compute(
    scores: Sequence[float],
    outcomes: Sequence[int],
    families: Sequence[str],
    target: float,
    confidence: float,
    router_id: str,
    router_version: str,
    local_model: str,
    labels_file: str = "",
) -> OperatingPoint:
    """The operating point for labelled rows (scores by the router named, outcomes of local_model). Scores are
    rounded to LABEL_DIGITS first (a router's scores are float32), so the file recomputes exactly what was chosen."""
    scores = [round(float(s), LABEL_DIGITS) for s in scores]
    selection = select_threshold(scores, outcomes, target, confidence)
    labels = list(zip(scores, (int(o) for o in outcomes), strict=False))
    return build(selection, families, router_id, router_version, local_model, labels_file, labels)


def load(path: str | Path) -> OperatingPoint:
    """Reads an operating-point file (OperatingPointError if it is not one)."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OperatingPointError(f"cannot read operating point {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise OperatingPointError(f"{path} is not a hybrid-router operating point")
    if data.get("format_version") != FORMAT_VERSION:
        raise OperatingPointError(f"{path}: operating point format {data.get('format_version')!r} is not supported")
    try:
        fields = {k: v for k, v in data.items() if k in OperatingPoint.__dataclass_fields__}
        fields["families"] = tuple(fields.get("families", ()))
        fields["labels"] = tuple((float(s), int(o)) for s, o in fields.get("labels", ()))
        point = OperatingPoint(**fields)
    except (TypeError, ValueError) as exc:
        raise OperatingPointError(f"{path}: {exc}") from exc
    if not 0.0 <= float(point.threshold) <= 1.0:
        raise OperatingPointError(f"{path}: threshold {point.threshold} is not in [0, 1]")
    return point


def find(
    data_dir: str | Path | None, router_id: str, router_version: str, local_model: str | None = None
) -> tuple[OperatingPoint | None, str]:
    """The operating point for this router: the data folder's (from `hybrid-router calibrate`), else the packaged
    one, when computed for this router id and version (and this local model, when named). (point or None, where it
    came from or why none applies)."""
    notes = []
    candidates = [(Path(data_dir).expanduser() / FILE_NAME, "data folder")] if data_dir else []
    candidates.append((PACKAGED_PATH, "packaged"))
    for path, where in candidates:
        if not path.is_file():
            continue
        try:
            point = load(path)
        except OperatingPointError as exc:
            notes.append(str(exc))
            continue
        if point.matches(router_id, router_version, local_model):
            return point, f"{where}:{path}"
        notes.append(
            f"{path} was computed for router {point.router_id} {point.router_version} "
            f"and local model {point.local_model}"
        )
    return None, "; ".join(notes) or "no operating point file"
