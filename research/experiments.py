"""Router research: targets x features x heads, selected on held-out train/ rows, benchmarks evaluated at the end.

Usage: OMP_NUM_THREADS=1 nice -n 10 python research/experiments.py [variant names...]   (no args: all variants)
Writes research/results/<variant>.json and prints one table row per variant.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, "/work/main")
from router_training.evaluate import apgr as _apgr, bootstrap_apgr, cpt, pgr_curve  # noqa: E402

from common import BENCH_FILES, STRONG, WEAK, question_text  # noqa: E402
from dataset import cheap_features, load_part, train_parts  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
K = 5


def apgr(s, a, b):
    return _apgr(np.asarray(s, float), np.asarray(a, float), np.asarray(b, float))


# ---------------- heads ----------------
def fit_ridge(X, y, w, alpha):
    mu = np.average(X, axis=0, weights=w)
    sd = np.sqrt(np.average((X - mu) ** 2, axis=0, weights=w)) + 1e-6
    Z = (X - mu) / sd
    ym = np.average(y, weights=w)
    A = (Z * w[:, None]).T @ Z + alpha * np.eye(Z.shape[1])
    beta = np.linalg.solve(A, (Z * w[:, None]).T @ (y - ym))
    coef = beta / sd
    return {"coef": coef, "bias": ym - mu @ coef}


def predict_linear(h, X):
    return X @ h["coef"] + h["bias"]


def fit_mlp(X, y, w, alpha, hidden=64, epochs=60, seed=0):
    import torch
    torch.manual_seed(seed)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xt = torch.tensor((X - mu) / sd, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    wt = torch.tensor(w / w.mean(), dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], hidden), torch.nn.GELU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=alpha)
    n = len(y)
    for _ in range(epochs):
        perm = torch.randperm(n)
        for i in range(0, n, 256):
            idx = perm[i:i + 256]
            loss = (wt[idx] * (net(Xt[idx]).squeeze(-1) - yt[idx]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return {"net": net, "mu": mu, "sd": sd}


def predict_mlp(h, X):
    import torch
    with torch.no_grad():
        return h["net"](torch.tensor((X - h["mu"]) / h["sd"], dtype=torch.float32)).squeeze(-1).numpy()


# ---------------- variant machinery ----------------
DEFAULT = {
    "target": {"mmlu_pro": "difficulty", "routerbench_train": "difficulty", "arena_bench_v1": "difficulty",
               "alpaca_eval_prefs": "difficulty", "routerdc_small_models": "difficulty", "gsm8k_train": "difficulty"},
    "std": "group",          # standardise the target within: group | file | none
    "file_weight": {},       # total weight per file (default: its row count)
    "features": "emb",       # emb | emb+cheap | cheap | emb+len
    "head": "ridge",
    "alpha": 10.0,
}


def standardise(y, keys):
    out = np.empty_like(y)
    for k in np.unique(keys):
        m = keys == k
        out[m] = (y[m] - y[m].mean()) / (y[m].std() + 1e-9)
    return out


def features(kind, emb, ntok, texts):
    cols = []
    if "emb" in kind:
        cols.append(emb)
    if "cheap" in kind:
        cols.append(cheap_features(texts, ntok))
    elif "len" in kind:
        cols.append(np.log(ntok)[:, None])
    return np.hstack(cols)


def build_training(parts, cfg):
    X, y, w, fold, keys = [], [], [], [], []
    for f, tname in cfg["target"].items():
        if tname is None:
            continue
        p = parts[f]
        keep = ~getattr(p, "overlap", np.zeros(len(p.rows), bool))
        t = p.targets[tname][keep]
        texts = [question_text(r) for r, k in zip(p.rows, keep) if k]
        X.append(features(cfg["features"], p.emb[keep], p.ntok[keep], texts))
        g = p.groups[keep]
        key = g if cfg["std"] == "group" else np.array([f] * len(t))
        y.append(standardise(t, key) if cfg["std"] != "none" else t)
        n = keep.sum()
        w.append(np.full(n, cfg["file_weight"].get(f, n) / n))
        fold.append(p.folds[keep])
        keys.append(np.array([f] * n))
    return np.vstack(X), np.concatenate(y), np.concatenate(w), np.concatenate(fold), np.concatenate(keys)


CHAT_FILES = ("arena_bench_v1", "alpaca_eval_prefs")


def fit_logistic(X, y, w, alpha, iters=300, lr=0.5):
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    beta, b0 = np.zeros(Z.shape[1]), 0.0
    wn = w / w.sum()
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(Z @ beta + b0)))
        g = p - y
        beta -= lr * (Z.T @ (wn * g) + alpha * beta / len(y))
        b0 -= lr * (wn * g).sum()
    return {"coef": beta / sd, "bias": b0 - (mu / sd) @ beta}


def fit_mix(cfg, X, y, w, keys):
    """Two ridge experts (chat files / task files) blended by a logistic chat-vs-task gate."""
    chat = np.isin(keys, CHAT_FILES)
    hc = fit_ridge(X[chat], y[chat], w[chat], cfg["alpha_chat"])
    ht = fit_ridge(X[~chat], y[~chat], w[~chat], cfg["alpha"])
    # balanced gate
    wg = np.where(chat, 0.5 / chat.sum(), 0.5 / (~chat).sum())
    hg = fit_logistic(X, chat.astype(float), wg, cfg.get("alpha_gate", 1.0))
    sc, st = predict_linear(hc, X[chat]), predict_linear(ht, X[~chat])
    return {"chat": hc, "task": ht, "gate": hg, "zc": (sc.mean(), sc.std()), "zt": (st.mean(), st.std())}


def predict_mix(h, X):
    p = 1 / (1 + np.exp(-predict_linear(h["gate"], X)))
    sc = (predict_linear(h["chat"], X) - h["zc"][0]) / h["zc"][1]
    st = (predict_linear(h["task"], X) - h["zt"][0]) / h["zt"][1]
    return p * sc + (1 - p) * st


def fit(cfg, X, y, w, keys=None):
    if cfg["head"] == "mix":
        return fit_mix(cfg, X, y, w, keys)
    if cfg["head"] == "ridge":
        return fit_ridge(X, y, w, cfg["alpha"])
    if cfg["head"] == "mlp":
        return fit_mlp(X, y, w, cfg["alpha"], hidden=cfg.get("hidden", 64), epochs=cfg.get("epochs", 40))
    raise ValueError(cfg["head"])


def predict(cfg, h, X):
    if cfg["head"] == "mix":
        return predict_mix(h, X)
    return predict_linear(h, X) if cfg["head"] == "ridge" else predict_mlp(h, X)


def selection(parts, cfg, oof_scores):
    """Held-out APGR per benchmark-like slice of train/ (pairs in dataset.SELECTION_PAIRS)."""
    res = {}
    for f, sub in [("mmlu_pro", None), ("routerbench_train", ("arc-challenge", "winogrande")),
                   ("routerdc_small_models", ("gsm8k",)), ("arena_bench_v1", None), ("alpaca_eval_prefs", None)]:
        p = parts[f]
        s = oof_scores[f]
        m = np.ones(len(p.rows), bool) if sub is None else np.array([r["dataset"] in sub for r in p.rows])
        if f == "routerdc_small_models":
            # small models only: an always-right strong model vs the mean of the 7 small models
            res[f] = apgr(s[m], np.ones(m.sum()), 1 - p.targets["mean_wrong"][m])
        else:
            res[f] = apgr(s[m], p.strong_score[m], p.weak_score[m])
    # post-hoc diagnostic (added after the benchmark numbers were seen; never used for selection):
    # MMLU-Pro APGR within each src (>= 100 rows), averaged — within-subject ranking only
    p = parts["mmlu_pro"]
    srcs = np.array([r["src"] for r in p.rows])
    vals = []
    for g in np.unique(srcs):
        m = srcs == g
        if m.sum() >= 100 and not np.isclose(p.strong_score[m].mean(), p.weak_score[m].mean()):
            vals.append(apgr(oof_scores["mmlu_pro"][m], p.strong_score[m], p.weak_score[m]))
    res["posthoc_mmlu_pro_within_src"] = float(np.mean(vals))
    res["MMLU-like"] = (res["mmlu_pro"] + res["routerbench_train"]) / 2
    res["GSM-like"] = res["routerdc_small_models"]
    res["chat-like"] = (res["arena_bench_v1"] + res["alpaca_eval_prefs"]) / 2
    res["SEL"] = (res["MMLU-like"] + res["GSM-like"] + res["chat-like"]) / 3
    return res


def oof_predictions(parts, cfg, score_fn=None):
    """Out-of-fold router scores for every labelled train file."""
    X, y, w, fold, keys = build_training(parts, cfg)
    oof = {f: np.zeros(len(parts[f].rows)) for f in parts}
    for k in range(K):
        tr = fold != k
        h = fit(cfg, X[tr], y[tr], w[tr], keys[tr])
        for f, p in parts.items():
            if f == "gsm8k_train":
                continue
            texts = [question_text(r) for r in p.rows]
            m = p.folds == k
            Xf = features(cfg["features"], p.emb[m], p.ntok[m], [t for t, mm in zip(texts, m) if mm])
            oof[f][m] = predict(cfg, h, Xf)
    return oof


_BENCH = {}


def bench_part(name):
    if name not in _BENCH:
        p = load_part(name)
        keep = np.array([not r.get("contaminated") for r in p.rows])
        p.keep = keep
        p.strong_score = np.array([r["scores"][STRONG] for r in p.rows], float)
        p.weak_score = np.array([r["scores"][WEAK] for r in p.rows], float)
        _BENCH[name] = p
    return _BENCH[name]


def bench_eval(scores_by_bench):
    out = {}
    for name, s in scores_by_bench.items():
        p = bench_part(name)
        k = p.keep
        a, b, sc = p.strong_score[k], p.weak_score[k], np.asarray(s, float)[k]
        r = {"apgr": apgr(sc, a, b), "cpt50": cpt(pgr_curve(sc, a, b), 0.5)}
        if name == "routellm_mt_bench":
            boots = bootstrap_apgr(sc, a, b, 2000, 0)
            r["ci90"] = [float(np.percentile(boots, 5)), float(np.percentile(boots, 95))]
        out[name] = r
    return out


def final_scores(parts, cfg):
    X, y, w, _, keys = build_training(parts, cfg)
    h = fit(cfg, X, y, w, keys)
    out = {}
    for name in BENCH_FILES:
        p = bench_part(name)
        Xb = features(cfg["features"], p.emb, p.ntok, [r["prompt"] for r in p.rows])
        out[name] = predict(cfg, h, Xb)
    return out, h


def _full(cfg):
    return {**DEFAULT, **cfg, "target": {**DEFAULT["target"], **cfg.get("target", {})}}


def ensemble(parts, names):
    """Average of the components' scores, each z-scored with its out-of-fold score mean/std over all labelled train rows."""
    oof_sum, bench_sum = None, None
    for n in names:
        c = _full(VARIANTS[n])
        oof = oof_predictions(parts, c)
        allv = np.concatenate([v for f, v in oof.items() if f != "gsm8k_train"])
        mu, sd = allv.mean(), allv.std()
        sc, _ = final_scores(parts, c)
        oz = {f: (v - mu) / sd for f, v in oof.items()}
        bz = {f: (v - mu) / sd for f, v in sc.items()}
        oof_sum = oz if oof_sum is None else {f: oof_sum[f] + oz[f] for f in oz}
        bench_sum = bz if bench_sum is None else {f: bench_sum[f] + bz[f] for f in bz}
    return oof_sum, bench_sum


def run_variant(parts, name, cfg):
    full = _full(cfg)
    if "ensemble" in cfg:
        oof, scores = ensemble(parts, cfg["ensemble"])
        sel = selection(parts, full, oof)
        bench = bench_eval(scores)
        res = {"variant": name, "config": cfg, "selection": sel, "bench": bench}
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.{_suffix()}.json").write_text(json.dumps(res, indent=1, default=str))
        return res
    oof = oof_predictions(parts, full)
    sel = selection(parts, full, oof)
    scores, _ = final_scores(parts, full)
    bench = bench_eval(scores)
    res = {"variant": name, "config": full, "selection": sel, "bench": bench}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.{_suffix()}.json").write_text(json.dumps(res, indent=1, default=str))
    return res


def _suffix():
    s = os.environ.get("ROUTER_EMB", "minilm")
    if os.environ.get("ROUTER_STATIC_NORM", "1") != "1":
        s += "-nonorm"
    if os.environ.get("ROUTER_FULL_MMLU") == "1":
        s += "-fullmmlu"
    return s


def fmt(res):
    s, b = res["selection"], res["bench"]
    mt = b["routellm_mt_bench"]
    return (f"| {res['variant']} | {s['SEL']:.3f} (mmlu-like {s['MMLU-like']:.3f}, gsm-like {s['GSM-like']:.3f}, "
            f"chat-like {s['chat-like']:.3f}; post-hoc within-src {s['posthoc_mmlu_pro_within_src']:.3f}) | {b['routellm_mmlu']['apgr']:.3f} | {b['routellm_gsm8k']['apgr']:.3f} | "
            f"{mt['apgr']:.3f} [{mt['ci90'][0]:.2f}, {mt['ci90'][1]:.2f}] | "
            f"{b['routellm_mmlu']['cpt50']:.2f}/{b['routellm_gsm8k']['cpt50']:.2f}/{mt['cpt50']:.2f} |")


G = {"gsm8k_train": None}
VARIANTS = {
    # target definitions
    "difficulty_groupstd": {},
    "difficulty_filestd": {"std": "file"},
    "difficulty_nostd": {"std": "none"},
    "mean_wrong_groupstd": {"target": {f: "mean_wrong" for f in DEFAULT["target"] if f != "gsm8k_train"}},
    "pair_gain_groupstd": {"target": {f: "pair_gain" for f in DEFAULT["target"] if f != "gsm8k_train"} | G},
    "weak_wrong_groupstd": {"target": {f: "weak_wrong" for f in DEFAULT["target"] if f != "gsm8k_train"} | G},
    "difficulty_no_gsm8k_steps": {"target": G},
    "difficulty_sol_len": {"target": {"gsm8k_train": "sol_len"}},
    # features
    "difficulty_emb+len": {"features": "emb+len"},
    "difficulty_emb+cheap": {"features": "emb+cheap"},
    "difficulty_cheap_only": {"features": "cheap", "alpha": 1.0},
    # regularisation
    "difficulty_alpha1": {"alpha": 1.0},
    "difficulty_alpha100": {"alpha": 100.0},
    "difficulty_alpha1000": {"alpha": 1000.0},
    # file weighting: chat files up-weighted
    "difficulty_chat_x4": {"file_weight": {"arena_bench_v1": 1200, "alpaca_eval_prefs": 1600}},
    "difficulty_equal_files": {"file_weight": {f: 3000 for f in DEFAULT["target"]}},
    # head
    "difficulty_mlp": {"head": "mlp", "alpha": 0.01},
    "mix_filestd": {"head": "mix", "std": "file", "alpha_chat": 100.0},
    "mix_filestd_chat_a10": {"head": "mix", "std": "file", "alpha_chat": 10.0},
    "mix_filestd_chat_a1000": {"head": "mix", "std": "file", "alpha_chat": 1000.0},
    "mix_groupstd": {"head": "mix", "std": "group", "alpha_chat": 100.0},
    "ens_mix_a1000+groupstd": {"ensemble": ["mix_filestd_chat_a1000", "difficulty_groupstd"]},
    "ens_mix_a1000+filestd": {"ensemble": ["mix_filestd_chat_a1000", "difficulty_filestd"]},
    "mix_filestd_cheap": {"head": "mix", "std": "file", "alpha_chat": 100.0, "features": "emb+cheap"},
    "mix_filestd_a1000_cheap": {"head": "mix", "std": "file", "alpha_chat": 1000.0, "features": "emb+cheap"},
    "mix_filestd_a1000_len": {"head": "mix", "std": "file", "alpha_chat": 1000.0, "features": "emb+len"},
    "mix_filestd_a3000": {"head": "mix", "std": "file", "alpha_chat": 3000.0},
    "mix_groupstd_a1000": {"head": "mix", "std": "group", "alpha_chat": 1000.0},
    "mix_filestd_a1000_task100": {"head": "mix", "std": "file", "alpha_chat": 1000.0, "alpha": 100.0},
    "mix_filestd_a1000_pairgain_chat": {"head": "mix", "std": "file", "alpha_chat": 1000.0,
                                        "target": {"arena_bench_v1": "pair_gain", "alpaca_eval_prefs": "pair_gain"}},
}

if __name__ == "__main__":
    import torch
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(VARIANTS)
    parts = train_parts()
    print("| variant | selection SEL (held-out train/) | MMLU | GSM8K | MT Bench [90% CI] | CPT50 m/g/mt |")
    print("|---|---|---|---|---|---|")
    for n in names:
        print(fmt(run_variant(parts, n, VARIANTS[n])), flush=True)
