"""Choose the cascade policy (config/cascade.toml) on the deployed pair's train file only.

    python bench/cascade_select.py              # the alternatives table; writes nothing
    python bench/cascade_select.py --write      # also writes layers/router/hybrid_router/config/cascade.toml

The pre-router is the packaged default router (the one cascade mode scores with). For each confidence signal
(hybrid_router.cascade: mean_logprob, min_logprob, verifier) and each band [low, high) (quantiles of the router's
scores on the train prompts), the train rows are ordered by CascadePolicy.score and measured by APGR
(router_training.evaluate). The verifier's numbers are out of fold: a logistic model fitted on four of five groups
of train families, scored on the fifth, so a family is never scored by a model that saw it; the shipped verifier
is then fitted on every train row. The chosen policy is the best APGR (a band that drafts for fewer prompts wins
within 0.005), and its minimum confidence the one whose decisions on the train rows lie furthest above random
(PGR minus strong share). The test file (bench/data/deployed_pair_test.jsonl) is never read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hybrid_router.cascade import POLICY_FILE, VERIFIER_FEATURES, CascadePolicy, Verifier, verifier_inputs  # noqa: E402
from router_training.evaluate import apgr  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TRAIN_FILE = REPO / "bench" / "data" / "deployed_pair_train.jsonl"
LOW_QUANTILES = (0.0, 0.1, 0.2, 0.3)
HIGH_QUANTILES = (0.7, 0.8, 0.9, 1.0)
FOLDS = 5
RIDGE = 10.0
TIE = 0.005


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def fit_verifier(x: np.ndarray, y: np.ndarray, ridge: float = RIDGE) -> Verifier:
    """Ridge logistic regression on standardised inputs (Newton steps): P(the weak model's draft is right)."""
    means, scales = x.mean(axis=0), x.std(axis=0)
    scales = np.where(scales > 1e-9, scales, 1.0)
    z = np.c_[(x - means) / scales, np.ones(len(x))]
    beta = np.zeros(z.shape[1])
    penalty = np.r_[np.full(z.shape[1] - 1, ridge), 0.0]
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        gradient = z.T @ (p - y) + penalty * beta
        hessian = (z.T * (p * (1 - p))) @ z + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return Verifier(
        weights=tuple(float(b) for b in beta[:-1]),
        bias=float(beta[-1]),
        means=tuple(float(m) for m in means),
        scales=tuple(float(s) for s in scales),
    )


def family_folds(families: Sequence[str], folds: int = FOLDS, seed: int = 0) -> list[np.ndarray]:
    names = np.random.default_rng(seed).permutation(sorted(set(families)))
    groups = [set(names[i::folds]) for i in range(folds)]
    return [np.array([f in group for f in families]) for group in groups]


def confidences(rows: Sequence[dict[str, Any]], signal: str, verifier: Verifier | None = None) -> np.ndarray:
    policy = CascadePolicy(0.0, 1.0, signal=signal, verifier=verifier)  # type: ignore[arg-type]
    return np.array([policy.confidence(r["weak_confidence"], int(r["max_tokens"])) for r in rows])


def out_of_fold_verifier(rows: Sequence[dict[str, Any]], x: np.ndarray, right: np.ndarray) -> np.ndarray:
    out = np.zeros(len(rows))
    for held in family_folds([r["family"] for r in rows]):
        model = fit_verifier(x[~held], right[~held])
        out[held] = [model.probability(v) for v in x[held]]
    return out


def decision_point(
    policy: CascadePolicy, router: np.ndarray, conf: np.ndarray, strong: np.ndarray, weak: np.ndarray
) -> tuple[float, float]:
    """(strong share, PGR) of the policy's own decisions on the rows."""
    to_strong = np.array([policy.score(s, c) >= policy.pivot for s, c in zip(router, conf, strict=False)])
    quality = np.where(to_strong, strong, weak).mean()
    return float(to_strong.mean()), float((quality - weak.mean()) / (strong.mean() - weak.mean()))


def select(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from hybrid_router.routing import load_router
    from hybrid_router.routing.router import DEFAULT_ROUTER_DIR

    weak_name, strong_name = rows[0]["pair"]["weak"], rows[0]["pair"]["strong"]
    strong = np.array([float(r["scores"][strong_name]) for r in rows])
    weak = np.array([float(r["scores"][weak_name]) for r in rows])
    router = load_router(DEFAULT_ROUTER_DIR).score([r["prompt"] for r in rows]).astype(np.float64)
    x = np.array([verifier_inputs(r["weak_confidence"], int(r["max_tokens"])) for r in rows])
    verifier = fit_verifier(x, weak)
    signal_conf = {
        "mean_logprob": confidences(rows, "mean_logprob"),
        "min_logprob": confidences(rows, "min_logprob"),
        "verifier": out_of_fold_verifier(rows, x, weak),
    }
    candidates = []
    for signal, conf in signal_conf.items():
        for lq in LOW_QUANTILES:
            for hq in HIGH_QUANTILES:
                low = float(np.quantile(router, lq)) if lq > 0 else 0.0
                high = float(np.quantile(router, hq)) if hq < 1 else 1.0
                policy = CascadePolicy(low, high, signal=signal, min_confidence=0.5, verifier=verifier)  # type: ignore[arg-type]
                scores = np.array([policy.score(s, c) for s, c in zip(router, conf, strict=False)])
                in_band = np.array([policy.pre_route(s) == "draft" for s in router])
                candidates.append(
                    {
                        "signal": signal,
                        "low_quantile": lq,
                        "high_quantile": hq,
                        "low": round(low, 6),
                        "high": round(high, 6),
                        "apgr": round(apgr(scores, strong, weak), 4),
                        "draft_share": round(float(in_band.mean()), 4),
                    }
                )
    best_apgr = max(c["apgr"] for c in candidates)
    chosen = min((c for c in candidates if c["apgr"] >= best_apgr - TIE), key=lambda c: (c["draft_share"], -c["apgr"]))
    conf = signal_conf[chosen["signal"]]
    base = CascadePolicy(chosen["low"], chosen["high"], signal=chosen["signal"], verifier=verifier)
    in_band = np.array([base.pre_route(s) == "draft" for s in router])
    points = []
    for t in sorted({round(float(q), 4) for q in np.quantile(conf[in_band], np.linspace(0.05, 0.95, 19))}):
        share, pgr = decision_point(base.with_overrides(min_confidence=t), router, conf, strong, weak)
        points.append({"min_confidence": t, "strong_share": round(share, 4), "pgr": round(pgr, 4)})
    operating = max(points, key=lambda p: p["pgr"] - p["strong_share"])
    return {
        "rows": len(rows),
        "default_router_apgr": round(apgr(router, strong, weak), 4),
        "signal_alone_apgr": {name: round(apgr(-c, strong, weak), 4) for name, c in signal_conf.items()},
        "candidates": candidates,
        "chosen": chosen,
        "operating_points": points,
        "operating": operating,
        "verifier": verifier,
    }


def policy_toml(result: dict[str, Any]) -> str:
    chosen, operating, verifier = result["chosen"], result["operating"], result["verifier"]

    def floats(values: Sequence[float]) -> str:
        return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"

    return "\n".join(
        [
            "# The cascade policy (hybrid_router/cascade.py), chosen by bench/cascade_select.py --write on",
            "# bench/data/deployed_pair_train.jsonl only: the pre-router is the packaged default router.",
            f"# Train APGR {chosen['apgr']:.3f} ({chosen['signal']}, band = router-score quantiles "
            f"{chosen['low_quantile']}-{chosen['high_quantile']}, {chosen['draft_share']:.0%} of train prompts drafted);",
            f"# at min_confidence {operating['min_confidence']}: {operating['strong_share']:.0%} strong, "
            f"PGR {operating['pgr']:.3f} on the train rows.",
            f'signal = "{chosen["signal"]}"',
            f"min_confidence = {operating['min_confidence']}",
            "",
            "[band]",
            f"low = {chosen['low']}",
            f"high = {chosen['high']}",
            "",
            f"# P(draft right) = sigmoid(bias + sum(w * (x - mean) / scale)), x = {', '.join(VERIFIER_FEATURES)}",
            "[verifier]",
            f"weights = {floats(verifier.weights)}",
            f"bias = {verifier.bias:.6g}",
            f"means = {floats(verifier.means)}",
            f"scales = {floats(verifier.scales)}",
            "",
        ]
    )


def markdown(result: dict[str, Any]) -> str:
    chosen = result["chosen"]
    lines = [
        f"{result['rows']} train prompts; default router alone APGR {result['default_router_apgr']:.3f}; "
        "each signal alone (no pre-router): "
        + ", ".join(f"{k} {v:.3f}" for k, v in result["signal_alone_apgr"].items()),
        "",
        "| signal | band (score quantiles) | drafted | train APGR |",
        "| --- | --- | ---: | ---: |",
    ]
    for c in sorted(result["candidates"], key=lambda c: -c["apgr"])[:12]:
        mark = " **chosen**" if c is chosen else ""
        lines.append(
            f"| {c['signal']}{mark} | {c['low_quantile']}-{c['high_quantile']} ({c['low']:.3f}-"
            f"{c['high']:.3f}) | {c['draft_share']:.0%} | {c['apgr']:.3f} |"
        )
    o = result["operating"]
    lines += [
        "",
        f"operating point: min_confidence {o['min_confidence']} -> {o['strong_share']:.0%} strong, "
        f"PGR {o['pgr']:.3f} on the train rows",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/cascade_select.py", description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, default=TRAIN_FILE)
    parser.add_argument("--write", action="store_true", help=f"write the chosen policy to {POLICY_FILE}")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = select(read_rows(args.train))
    if args.write:
        POLICY_FILE.write_text(policy_toml(result), encoding="utf-8")
    shown = {k: v for k, v in result.items() if k != "verifier"}
    print(json.dumps(shown, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
