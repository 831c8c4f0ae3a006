"""Cost-quality curve of a router on a benchmark (PNG): router, random (mean over seeds), oracle, weak / strong only."""

from __future__ import annotations

import os

import numpy as np

from router_training.evaluate import DEFAULT_RANDOM_SEEDS, BenchmarkData, pgr_curve


def _quality(curve_pgr: np.ndarray, r_strong: float, r_weak: float) -> np.ndarray:
    return r_weak + curve_pgr * (r_strong - r_weak)


def plot_cost_quality(
    data: BenchmarkData,
    router_scores: np.ndarray,
    path: str | os.PathLike[str],
    label: str = "router",
    random_seeds: int = DEFAULT_RANDOM_SEEDS,
) -> None:
    """Mean score of the answers used (y) against the share of prompts sent to the strong model (x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, w = data.strong, data.weak
    r_strong, r_weak = float(s.mean()), float(w.mean())
    grid = np.linspace(0.0, 1.0, 201)

    router = pgr_curve(np.asarray(router_scores, dtype=np.float64), s, w)
    oracle = pgr_curve(s - w, s, w)
    randoms = [pgr_curve(np.random.default_rng(k).random(data.n), s, w) for k in range(max(random_seeds, 1))]
    random_mean = np.mean([np.interp(grid, c.c, c.pgr) for c in randoms], axis=0)

    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(100 * router.c, _quality(router.pgr, r_strong, r_weak), label=label, linewidth=2)
    ax.plot(
        100 * grid,
        _quality(random_mean, r_strong, r_weak),
        label=f"random (mean of {len(randoms)} seeds)",
        linestyle=":",
    )
    ax.plot(100 * oracle.c, _quality(oracle.pgr, r_strong, r_weak), label="oracle", linestyle="-.", alpha=0.6)
    ax.axhline(r_strong, color="red", linestyle="--", label=f"strong only: {data.strong_model}")
    ax.axhline(r_weak, color="grey", linestyle="--", label=f"weak only: {data.weak_model}")
    ax.set_xlabel("prompts sent to the strong model (%)")
    ax.set_ylabel("mean score of the answers used")
    ax.set_title(f"{os.path.basename(data.source)} (n={data.n})")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
