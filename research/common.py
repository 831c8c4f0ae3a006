"""Shared helpers for router research: data loading, text views, APGR."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data")
CACHE = Path(__file__).resolve().parent / "cache"
STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
TRAIN_FILES = ["mmlu_pro", "routerbench_train", "arena_bench_v1", "gsm8k_train",
               "routerdc_small_models", "alpaca_eval_prefs"]
BENCH_FILES = ["routellm_mmlu", "routellm_gsm8k", "routellm_mt_bench"]


def load_jsonl(path: Path) -> list[dict]:
    with open(path) as fh:
        return [json.loads(line) for line in fh]


def load_train(name: str) -> list[dict]:
    return load_jsonl(DATA / "train" / f"{name}.jsonl")


def load_bench(name: str, keep_contaminated: bool = False) -> list[dict]:
    rows = load_jsonl(DATA / "benchmarks" / f"{name}.jsonl")
    return rows if keep_contaminated else [r for r in rows if not r.get("contaminated")]


def question_text(row: dict) -> str:
    """The text a router should learn from: RouterBench few-shot prompts reduced to the asked question."""
    p = row["prompt"]
    if row.get("dataset") in ("arc-challenge", "winogrande"):
        p = p.strip().split("\n\n")[-1]
        p = re.sub(r"\nPrint only a single choice.*$", "", p, flags=re.S)
    return p


# ---------------- APGR (RouteLLM definition, DESIGN.md section 4) ----------------
def pgr_curve(router_scores: np.ndarray, strong: np.ndarray, weak: np.ndarray, n_points: int = 101):
    """PGR at strong shares c = 0..1: route the top-c fraction by router score to strong.
    Ties in router scores are averaged (expected value over random tie-breaks)."""
    s = np.asarray(router_scores, float)
    strong = np.asarray(strong, float)
    weak = np.asarray(weak, float)
    n = len(s)
    gain = strong - weak
    order = np.argsort(-s, kind="stable")
    sg = gain[order]
    ss = s[order]
    # average gain within tie groups so that ties are order-independent
    _, start, counts = np.unique(-ss, return_index=True, return_counts=True)
    for st, ct in zip(start, counts):
        if ct > 1:
            sg[st:st + ct] = sg[st:st + ct].mean()
    cum = np.concatenate([[0.0], np.cumsum(sg)])
    cs = np.linspace(0, 1, n_points)
    k = cs * n
    lo = np.floor(k).astype(int)
    frac = k - lo
    hi = np.minimum(lo + 1, n)
    got = cum[lo] + frac * (cum[hi] - cum[lo])
    r = weak.mean() + got / n
    denom = strong.mean() - weak.mean()
    return cs, (r - weak.mean()) / denom


def apgr(router_scores, strong, weak) -> float:
    cs, pgr = pgr_curve(router_scores, strong, weak)
    return float(np.trapezoid(pgr, cs))


def cpt(router_scores, strong, weak, x: float = 0.5) -> float:
    cs, pgr = pgr_curve(router_scores, strong, weak, n_points=1001)
    idx = np.nonzero(pgr >= x)[0]
    return float(cs[idx[0]]) if len(idx) else 1.0


def bootstrap_apgr(router_scores, strong, weak, n_boot: int = 2000, seed: int = 0, q=(0.05, 0.95)):
    rng = np.random.default_rng(seed)
    n = len(router_scores)
    vals = []
    s, a, b = map(np.asarray, (router_scores, strong, weak))
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        if np.isclose(a[i].mean(), b[i].mean()):
            continue
        vals.append(apgr(s[i], a[i], b[i]))
    return tuple(np.quantile(vals, q))
