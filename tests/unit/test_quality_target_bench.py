"""bench/quality_target.py: the committed report is what the script measures now, and the shipped point in it is the
packaged operating point applied to the held-out families and the hand-written cases."""

from __future__ import annotations

import json

import numpy as np


def test_the_report_reproduces_and_the_shipped_point_is_the_packaged_one(bench_script) -> None:
    bench = bench_script("quality_target")
    from hybrid_router.routing import operating_point as op

    report = bench.build()
    committed = json.loads(bench.REPORT.read_text())
    assert report == committed
    packaged = op.load(op.PACKAGED_PATH)
    shipped = report["shipped"]
    assert (shipped["quality_target"], shipped["threshold"], shipped["met"]) == (0.9, packaged.threshold, packaged.met)
    assert shipped["held_out"]["prompts"] == 402 and set(shipped["cases"]) == {
        "obvious_hard_strong",
        "obvious_trivial_local",
        "fresh_hard_strong",
        "fresh_trivial_local",
    }
    assert report["fresh_trivial_answers"]["judged"] == 32


def test_the_family_split_study_measures_on_the_other_families(bench_script) -> None:
    bench = bench_script("quality_target")
    rng = np.random.default_rng(0)
    families = [f"f{i % 10}" for i in range(1000)]
    scores = rng.uniform(size=1000)
    right = np.ones(1000, dtype=int)  # always right: every split keeps everything, and nothing fails
    result = bench.family_split_study(scores, right, families, 0.9, splits=5)
    assert result["met_share"] == 1.0 and result["mean_held_out_strong_share"] < 0.01  # above every calibration score
    assert result["mean_realized_failure_when_kept"] == 0.0 and result["share_over_target_when_kept"] == 0.0
