"""Evaluate a strong/weak router on a benchmark file with RouteLLM's measures.

    python -m router_training.evaluate --benchmark FILE [--router PATH | --scores SCORES.jsonl]
        [--strong M --weak M] [--json] [--plot PNG] [--include-contaminated]

Definitions. A router gives each prompt a score; a prompt goes to the strong model when its
score >= threshold. For a threshold, c = share of prompts sent to the strong model and r = mean benchmark score
of the answers actually used (strong model's score where routed strong, weak model's elsewhere).

- PGR(c) = (r - r_weak) / (r_strong - r_weak), r_weak / r_strong = always-weak / always-strong means.
- The curve has one point per distinct router score (every threshold that changes a decision), plus the end
  points c = 0 (nothing strong) and c = 1 (everything strong); between points it is a straight line.
- Ties: prompts with equal scores always go the same way (a threshold cannot split them), so a tied group is one
  step of the curve, and the straight line across that step is exactly the expected result of splitting the group
  at random. The result is deterministic and independent of row order.
- APGR = trapezoid area under PGR over c from 0 to 1. RouteLLM's evaluate.py does the same (np.trapz of accuracy
  over strong-call share, normalised by the weak/strong areas), but only at 11 thresholds, the deciles of the
  router's scores (pd.qcut, `>=` except `>` at the top one). We use every threshold, which is its limit and has no
  decile-sampling noise; `apgr_routellm_deciles` reports RouteLLM's 11-point version beside it for comparison.
- CPT(x) = the smallest c at which the curve reaches PGR >= x (first crossing, interpolated along the line).
  RouteLLM interpolates c from accuracy with np.interp, which agrees when the curve is increasing.
- pgr_at[c] = PGR on the curve at strong shares 10, 20, 30, 50 %.
- saving_at_95 = 1 - CPT(95%): the share of strong-model calls (and, taking the local weak model as free, of the
  strong-model cost) saved against always using the strong model while keeping 95% of its quality, where
  "95% of its quality" means closing 95% of the weak-to-strong gap (PGR >= 0.95). Scale-free; the plain ratio
  r >= 0.95 * r_strong would be met by the weak model alone on these benchmarks.
- random_apgr: a router with uniform random scores, mean (and std) over seeds 0..k-1 (expected value 0.5).
- oracle_apgr: the router that knows the answers (score = strong score - weak score).
- apgr_ci90: 5th / 95th percentiles of APGR over bootstrap resamples of the prompts (with their scores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_training.plots import CostQualityChart, Line, plot_cost_quality
from router_training.scoring import (
    DEFAULT_BATCH_SIZE,
    iter_jsonl,
    load_router_for_scoring,
    load_scores_file,
    require_field,
    router_id,
    score_prompts,
)

PGR_SHARES = (0.1, 0.2, 0.3, 0.5)
CPT_LEVELS = (0.2, 0.5, 0.8, 0.95)
DEFAULT_RANDOM_SEEDS = 10
DEFAULT_BOOTSTRAP = 200
_TOL = 1e-9


# ----------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class BenchmarkData:
    """The evaluated rows of a benchmark (contaminated rows already left out unless asked for)."""

    source: str
    strong_model: str
    weak_model: str
    ids: list[str | int]
    prompts: list[str]
    strong: np.ndarray
    weak: np.ndarray
    n_rows: int
    n_contaminated_excluded: int

    @property
    def n(self) -> int:
        return len(self.ids)


def manifest_pair(path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """(strong, weak) from the manifest.json beside a benchmark file, if that manifest lists the file."""
    manifest = Path(path).resolve().parent / "manifest.json"
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = entries.get(Path(path).name) if isinstance(entries, dict) else None
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("strong_model"), str)
        and isinstance(entry.get("weak_model"), str)
    ):
        return entry["strong_model"], entry["weak_model"]
    return None


def _validated_rows(rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    seen: dict[Any, str] = {}
    for where, row in rows:
        row_id = require_field(dict(row), "id", (str, int), where)
        require_field(dict(row), "prompt", str, where)
        require_field(dict(row), "scores", dict, where)
        require_field(dict(row), "contaminated", bool, where)
        if row_id in seen:
            raise ValueError(f"{where}: duplicate id {row_id!r} (first at {seen[row_id]})")
        seen[row_id] = where
    return list(rows)


def _build(
    located_rows: Sequence[tuple[str, Mapping[str, Any]]],
    source: str,
    strong_model: str,
    weak_model: str,
    include_contaminated: bool,
) -> BenchmarkData:
    rows = _validated_rows(located_rows)
    if not rows:
        raise ValueError(f"{source}: no rows")
    if strong_model == weak_model:
        raise ValueError(f"strong and weak model are the same ({strong_model!r})")
    present: set[str] = set()
    for _, row in rows:
        present.update(row["scores"])
    for model in (strong_model, weak_model):
        if model not in present:
            raise ValueError(
                f"{source}: unknown model {model!r}: no row has a score for it (models present: {sorted(present)})"
            )
    kept = [(w, r) for w, r in rows if include_contaminated or not r["contaminated"]]
    if not kept:
        raise ValueError(f"{source}: every row is contaminated; nothing to evaluate")
    strong = np.empty(len(kept))
    weak = np.empty(len(kept))
    for i, (where, row) in enumerate(kept):
        for model, out in ((strong_model, strong), (weak_model, weak)):
            if model not in row["scores"]:
                raise ValueError(f"{where}: field 'scores' has no score for model {model!r}")
            value = row["scores"][model]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{where}: field 'scores.{model}' must be a finite number, got {value!r}")
            out[i] = float(value)
    return BenchmarkData(
        source=source,
        strong_model=strong_model,
        weak_model=weak_model,
        ids=[r["id"] for _, r in kept],
        prompts=[r["prompt"] for _, r in kept],
        strong=strong,
        weak=weak,
        n_rows=len(rows),
        n_contaminated_excluded=len(rows) - len(kept),
    )


def load_benchmark(
    path: str | os.PathLike[str],
    strong: str | None = None,
    weak: str | None = None,
    include_contaminated: bool = False,
) -> BenchmarkData:
    """Load and check a benchmark JSONL (id, prompt, scores{model: number}, contaminated).

    strong/weak default to the pair in the manifest.json beside the file, when it lists the file.
    Raises ValueError naming the line and field on bad JSON, missing fields or missing model scores.
    """
    if strong is None or weak is None:
        pair = manifest_pair(path)
        if pair is None:
            raise ValueError(
                f"{path} is not listed in a manifest.json beside it: give the model pair (--strong M --weak M)"
            )
        strong = strong if strong is not None else pair[0]
        weak = weak if weak is not None else pair[1]
    located = [(f"{path}:{line_no}", obj) for line_no, obj in iter_jsonl(path)]
    return _build(located, str(path), strong, weak, include_contaminated)


def benchmark_from_rows(
    rows: Sequence[Mapping[str, Any]], strong: str, weak: str, include_contaminated: bool = False
) -> BenchmarkData:
    """The same checks as load_benchmark, on rows already parsed (errors name the row index)."""
    return _build([(f"row {i}", r) for i, r in enumerate(rows)], "rows", strong, weak, include_contaminated)


# ----------------------------------------------------------------------------------------------- measures


@dataclass(frozen=True)
class Curve:
    """Strong share c and PGR at every distinct threshold, c increasing from 0 to 1."""

    c: np.ndarray
    pgr: np.ndarray


def _gap(strong: np.ndarray, weak: np.ndarray) -> tuple[float, float]:
    r_strong, r_weak = float(strong.mean()), float(weak.mean())
    if math.isclose(r_strong, r_weak, rel_tol=0.0, abs_tol=1e-12):
        raise ValueError(
            f"strong and weak model have the same mean score ({r_strong:.6g}); PGR is undefined on these rows"
        )
    return r_strong, r_weak


def pgr_curve(router_scores: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> Curve:
    """PGR curve of a threshold router: one point per distinct score, tied prompts moved together."""
    scores = np.asarray(router_scores, dtype=np.float64)
    if scores.shape != strong.shape:
        raise ValueError(f"{scores.shape[0]} router scores for {strong.shape[0]} prompts")
    if not np.all(np.isfinite(scores)):
        raise ValueError("router scores must be finite numbers")
    r_strong, r_weak = _gap(strong, weak)
    n = scores.shape[0]
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    gain = np.concatenate(([0.0], np.cumsum((strong - weak)[order])))
    cuts = np.concatenate(([0], np.flatnonzero(sorted_scores[1:] != sorted_scores[:-1]) + 1, [n]))
    c = cuts / n
    r = r_weak + gain[cuts] / n
    return Curve(c=c, pgr=(r - r_weak) / (r_strong - r_weak))


def area(curve: Curve) -> float:
    """Trapezoid area under PGR over c in [0, 1]."""
    return float(np.sum((curve.c[1:] - curve.c[:-1]) * (curve.pgr[1:] + curve.pgr[:-1]) / 2.0))


def apgr(router_scores: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> float:
    return area(pgr_curve(router_scores, strong, weak))


def pgr_at(curve: Curve, share: float) -> float:
    return float(np.interp(share, curve.c, curve.pgr))


def cpt(curve: Curve, level: float) -> float | None:
    """Smallest strong share at which PGR reaches `level` (None if it never does)."""
    hits = np.flatnonzero(curve.pgr >= level - _TOL)
    if hits.size == 0:
        return None
    i = int(hits[0])
    if i == 0:
        return float(curve.c[0])
    c0, c1, p0, p1 = curve.c[i - 1], curve.c[i], curve.pgr[i - 1], curve.pgr[i]
    return float(min(c1, c0 + (level - p0) / (p1 - p0) * (c1 - c0)))


def apgr_routellm_deciles(router_scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, bins: int = 10) -> float:
    """RouteLLM's evaluate.py APGR: thresholds at the score quantiles 0, 1/bins, ..., 1 (>= except > at the top)."""
    scores = np.asarray(router_scores, dtype=np.float64)
    r_strong, r_weak = _gap(strong, weak)
    thresholds = np.quantile(scores, np.linspace(0.0, 1.0, bins + 1))
    points = []
    for i, t in enumerate(thresholds):
        to_strong = scores > t if i == bins else scores >= t
        r = float(np.where(to_strong, strong, weak).mean())
        points.append((float(to_strong.mean()), (r - r_weak) / (r_strong - r_weak)))
    points.sort(key=lambda p: p[0])
    return area(Curve(c=np.array([p[0] for p in points]), pgr=np.array([p[1] for p in points])))


def random_apgrs(strong: np.ndarray, weak: np.ndarray, seeds: int = DEFAULT_RANDOM_SEEDS) -> np.ndarray:
    return np.array([apgr(np.random.default_rng(s).random(strong.shape[0]), strong, weak) for s in range(seeds)])


def bootstrap_apgr(
    router_scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, resamples: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> np.ndarray:
    """APGR on resamples of the prompts (with replacement); resamples where strong == weak on average are skipped."""
    rng = np.random.default_rng(seed)
    n = strong.shape[0]
    values = []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        s, w = strong[idx], weak[idx]
        if math.isclose(float(s.mean()), float(w.mean()), rel_tol=0.0, abs_tol=1e-12):
            continue
        values.append(apgr(router_scores[idx], s, w))
    return np.array(values)


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def evaluate_scores(
    router_scores: Sequence[float] | np.ndarray,
    strong: Sequence[float] | np.ndarray,
    weak: Sequence[float] | np.ndarray,
    *,
    random_seeds: int = DEFAULT_RANDOM_SEEDS,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """All measures for one router on aligned arrays (router score, strong model score, weak model score)."""
    scores = np.asarray(router_scores, dtype=np.float64)
    s = np.asarray(strong, dtype=np.float64)
    w = np.asarray(weak, dtype=np.float64)
    curve = pgr_curve(scores, s, w)
    randoms = random_apgrs(s, w, random_seeds) if random_seeds > 0 else np.array([])
    boots = bootstrap_apgr(scores, s, w, bootstrap, seed) if bootstrap > 0 else np.array([])
    cpts = {f"{round(level * 100)}": _round(cpt(curve, level)) for level in CPT_LEVELS}
    cpt95 = cpt(curve, 0.95)
    return {
        "n": int(s.shape[0]),
        "strong_mean": _round(s.mean()),
        "weak_mean": _round(w.mean()),
        "apgr": _round(area(curve)),
        "apgr_ci90": [_round(np.percentile(boots, 5)), _round(np.percentile(boots, 95))] if boots.size else None,
        "bootstrap_resamples": int(boots.size),
        "apgr_routellm_deciles": _round(apgr_routellm_deciles(scores, s, w)),
        "cpt20": cpts["20"],
        "cpt50": cpts["50"],
        "cpt80": cpts["80"],
        "cpt95": cpts["95"],
        "pgr_at": {f"{share:.2f}": _round(pgr_at(curve, share)) for share in PGR_SHARES},
        "saving_at_95": _round(None if cpt95 is None else 1.0 - cpt95),
        "random_apgr": _round(randoms.mean()) if randoms.size else None,
        "random_apgr_std": _round(randoms.std(ddof=1)) if randoms.size > 1 else None,
        "random_seeds": int(randoms.size),
        "oracle_apgr": _round(apgr(s - w, s, w)),
        "distinct_scores": int(curve.c.shape[0] - 1),
    }


def evaluate_benchmark(
    rows: BenchmarkData | Sequence[Mapping[str, Any]],
    scores: Sequence[float] | np.ndarray,
    strong: str | None = None,
    weak: str | None = None,
    *,
    include_contaminated: bool = False,
    random_seeds: int = DEFAULT_RANDOM_SEEDS,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> dict[str, Any]:
    """Library entry point: measures for router `scores` on benchmark rows.

    rows: a BenchmarkData (scores aligned with its evaluated rows; strong/weak taken from it) or parsed JSONL rows
    (scores aligned with ALL the given rows; contaminated ones are dropped together with their scores unless
    include_contaminated; strong/weak required).
    """
    score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if isinstance(rows, BenchmarkData):
        data = rows
    else:
        if strong is None or weak is None:
            raise ValueError("strong and weak model names are required with plain rows")
        if score_arr.shape[0] != len(rows):
            raise ValueError(f"{score_arr.shape[0]} router scores for {len(rows)} rows")
        data = benchmark_from_rows(rows, strong, weak, include_contaminated)
        keep = np.array([include_contaminated or not r["contaminated"] for r in rows])
        score_arr = score_arr[keep]
    if score_arr.shape[0] != data.n:
        raise ValueError(f"{score_arr.shape[0]} router scores for {data.n} evaluated rows")
    result = {
        "benchmark": Path(data.source).name,
        "strong_model": data.strong_model,
        "weak_model": data.weak_model,
        "n_excluded_contaminated": data.n_contaminated_excluded,
    }
    result.update(
        evaluate_scores(score_arr, data.strong, data.weak, random_seeds=random_seeds, bootstrap=bootstrap, seed=seed)
    )
    return result


def scores_for(data: BenchmarkData, by_id: Mapping[str | int, float], source: str) -> np.ndarray:
    """Align a {id: score} mapping with the benchmark's evaluated rows; every row needs a score."""
    missing = [i for i in data.ids if i not in by_id]
    if missing:
        raise ValueError(f"{source}: no score for {len(missing)} of {data.n} benchmark rows (first: {missing[0]!r})")
    return np.array([by_id[i] for i in data.ids], dtype=np.float64)


def cost_quality_chart(
    data: BenchmarkData, router_scores: np.ndarray, label: str, random_seeds: int = DEFAULT_RANDOM_SEEDS
) -> CostQualityChart:
    """The cost-quality chart's lines: the router, random routers (mean over seeds) and the oracle."""
    s, w = data.strong, data.weak
    r_strong, r_weak = float(s.mean()), float(w.mean())

    def line(share: np.ndarray, pgr: np.ndarray) -> Line:
        return Line(strong_share=share, quality=r_weak + pgr * (r_strong - r_weak))

    grid = np.linspace(0.0, 1.0, 201)
    router = pgr_curve(np.asarray(router_scores, dtype=np.float64), s, w)
    oracle = pgr_curve(s - w, s, w)
    randoms = [pgr_curve(np.random.default_rng(k).random(data.n), s, w) for k in range(max(random_seeds, 1))]
    random_mean = np.mean([np.interp(grid, c.c, c.pgr) for c in randoms], axis=0)
    return CostQualityChart(
        title=f"{os.path.basename(data.source)} (n={data.n})",
        router_label=label,
        router=line(router.c, router.pgr),
        random=line(grid, random_mean),
        random_seeds=len(randoms),
        oracle=line(oracle.c, oracle.pgr),
        strong_model=data.strong_model,
        strong_mean=r_strong,
        weak_model=data.weak_model,
        weak_mean=r_weak,
    )


# ----------------------------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eval", description="Evaluate a router on a benchmark (RouteLLM measures).")
    parser.add_argument(
        "--benchmark", required=True, help="benchmark JSONL: id, prompt, scores{model: number}, contaminated"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--router", default=None, help="router .onnx (default: env HYBRID_ROUTER_ROUTER, else packaged)"
    )
    source.add_argument("--scores", default=None, help='JSONL of {"id", "score"} instead of running a router')
    parser.add_argument("--strong", default=None, help="strong model (default: from the manifest beside the file)")
    parser.add_argument("--weak", default=None, help="weak model (default: from the manifest beside the file)")
    parser.add_argument("--include-contaminated", action="store_true", help="keep rows flagged contaminated")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--plot", default=None, metavar="PNG", help="write a cost-quality curve")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    parser.add_argument("--random-seeds", type=int, default=DEFAULT_RANDOM_SEEDS)
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples for apgr_ci90")
    return parser


def _format_text(result: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "never" if x is None else f"{100 * x:.1f}%"

    ci = result["apgr_ci90"]
    lines = [
        f"benchmark   {result['benchmark']}  (n={result['n']}, {result['n_excluded_contaminated']} contaminated left out)",
        f"router      {result['router']}",
        f"models      strong {result['strong_model']} = {result['strong_mean']:.4f}, weak {result['weak_model']} = {result['weak_mean']:.4f}",
        f"APGR        {result['apgr']:.3f}"
        + (f"  (90% CI {ci[0]:.3f}..{ci[1]:.3f})" if ci else "")
        + f"  [RouteLLM deciles {result['apgr_routellm_deciles']:.3f}]",
        (
            f"random      {result['random_apgr']:.3f} ± {result['random_apgr_std'] or 0:.3f} over {result['random_seeds']} seeds"
            if result["random_apgr"] is not None
            else "random      (not computed)"
        ),
        f"oracle      {result['oracle_apgr']:.3f}",
        f"CPT         20%: {pct(result['cpt20'])}  50%: {pct(result['cpt50'])}  80%: {pct(result['cpt80'])}  95%: {pct(result['cpt95'])}",
        "PGR at      " + "  ".join(f"{pct(float(k))}: {v:.3f}" for k, v in result["pgr_at"].items()),
        f"saving@95%  {pct(result['saving_at_95'])} of strong calls (PGR >= 0.95)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        data = load_benchmark(args.benchmark, args.strong, args.weak, args.include_contaminated)
        if args.scores:
            scores = scores_for(data, load_scores_file(args.scores), args.scores)
            rid = f"scores:{Path(args.scores).name}"
        else:
            router = load_router_for_scoring(args.router)
            rid = router_id(router)
            scores = score_prompts(router, data.prompts, batch_size=args.batch_size)
        result = {"router": rid}
        result.update(evaluate_benchmark(data, scores, random_seeds=args.random_seeds, bootstrap=args.bootstrap))
        if args.plot:
            plot_cost_quality(cost_quality_chart(data, scores, rid, args.random_seeds), args.plot)
            result["plot"] = str(args.plot)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else _format_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
