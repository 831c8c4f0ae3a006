"""Cost-quality chart of a router on a benchmark (PNG): router, random (mean over seeds), oracle, weak / strong only.

It draws the lines it is given; router_training.evaluate computes them (`cost_quality_chart`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Line:
    """Mean score of the answers used at each share of prompts sent to the strong model (0..1)."""

    strong_share: np.ndarray
    quality: np.ndarray


@dataclass(frozen=True)
class CostQualityChart:
    title: str
    router_label: str
    router: Line
    random: Line  # the mean over `random_seeds` random routers
    random_seeds: int
    oracle: Line
    strong_model: str
    strong_mean: float
    weak_model: str
    weak_mean: float


def plot_cost_quality(chart: CostQualityChart, path: str | os.PathLike[str]) -> None:
    """Mean score of the answers used (y) against the share of prompts sent to the strong model (x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    ax.plot(100 * chart.router.strong_share, chart.router.quality, label=chart.router_label, linewidth=2)
    ax.plot(
        100 * chart.random.strong_share,
        chart.random.quality,
        label=f"random (mean of {chart.random_seeds} seeds)",
        linestyle=":",
    )
    ax.plot(100 * chart.oracle.strong_share, chart.oracle.quality, label="oracle", linestyle="-.", alpha=0.6)
    ax.axhline(chart.strong_mean, color="red", linestyle="--", label=f"strong only: {chart.strong_model}")
    ax.axhline(chart.weak_mean, color="grey", linestyle="--", label=f"weak only: {chart.weak_model}")
    ax.set_xlabel("prompts sent to the strong model (%)")
    ax.set_ylabel("mean score of the answers used")
    ax.set_title(chart.title)
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
