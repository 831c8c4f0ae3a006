"""Maths expert blend: within maths prompts, rank by a calculator-steps regressor trained on gsm8k_train.

raw = (1 - p_maths) * raw_clf + p_maths * (m + s * z_steps), m and s = mean and sd of raw_clf over maths training
rows, so maths prompts keep their level against other prompts and only their order among themselves changes.
Held-out measures: rank correlation with RouterDC gsm8k difficulty (fitted without those rows), the group K-fold
selection of cv_lab.py, and the obvious-cases AUC."""
import numpy as np

import cv_lab as C
import ens_lab as E
from ens_lab import L
from router_training import cheap_features as CF
from router_training.mix import _ridge
from router_training.obvious_cases import auc, load_cases

steps = np.array([np.log1p(r.extra["answer"].count("<<")) for r in L.answer_rows])
answer_base = L.cheap([r.prompt for r in L.answer_rows])
maths_rows = np.array([CF.task_of(r.file, r.group) == 1 for r in L.rows])


def blend(fit_mask, alpha=10.0, mode="replace"):
    """Held-out raw scores of the blend for rows outside fit_mask (the clf, gate and expert fitted on fit_mask)."""
    L.held = ~fit_mask
    E.tr = fit_mask
    E.train_rows = [r for r, f in zip(L.rows, fit_mask) if f]
    p = np.clip(E.held_scores("clf", {"alpha": 3.0}, "task-cheap"), 1e-6, 1 - 1e-6)
    raw = np.log(p / (1 - p))
    gate = E.base_args.__dict__["gate_cache"]
    W, b = list(gate.values())[-1]
    pm = CF._softmax(L.emb @ W + b)[:, 1]
    w, c = _ridge(np.concatenate([L.answer_emb, answer_base], 1), steps, alpha)
    e = np.concatenate([L.emb, L.base], 1) @ w + c
    ea = np.concatenate([L.answer_emb, answer_base], 1) @ w + c
    z = (e - ea.mean()) / ea.std()
    ref = fit_mask & maths_rows
    m, s = raw[ref].mean(), raw[ref].std()
    return raw, (1 - pm) * raw + pm * (m + s * z), pm


if __name__ == "__main__" and "--extra" not in __import__("sys").argv:
    dc = np.array([r.group == "routerdc_small_models/gsm8k" for r in L.rows])
    diff = np.array([1 - np.mean(list(r.scores.values())) for r in L.rows])
    rank = lambda v: np.argsort(np.argsort(v))
    rho = lambda s: np.corrcoef(rank(s[dc]), rank(diff[dc]))[0, 1]
    base_raw, blended, pm = blend(~dc)
    print(f"RouterDC gsm8k held out: rho clf task-cheap {rho(base_raw):.3f}, blend {rho(blended):.3f}; "
          f"mean p_maths there {pm[dc].mean():.2f}")
    cv_base, cv_blend = np.zeros(len(L.rows)), np.zeros(len(L.rows))
    for k in range(5):
        f = C.fold == k
        b0, b1, _ = blend(~f)
        cv_base[f], cv_blend[f] = b0[f], b1[f]
    C.report("clf task-cheap", cv_base)
    C.report("clf task-cheap + maths blend", cv_blend)


def extra_measures():
    from router_training.evaluate import apgr
    dc = np.array([r.group == "routerdc_small_models/gsm8k" for r in L.rows])
    mean7 = np.array([np.mean(list(r.scores.values())) for r in L.rows])
    base_raw, blended, _ = blend(~dc)
    for name, s in (("clf task-cheap", base_raw), ("blend", blended), ("log length", np.log(L.chars))):
        print(f"{name:16s} APGR(perfect strong vs mean of 7) on RouterDC gsm8k: {apgr(s[dc], np.ones(dc.sum()), mean7[dc]):.3f}")
    # obvious cases, everything fitted on all rows
    cases = load_cases()
    texts = cases["easy"] + cases["hard"]
    n = len(cases["easy"])
    keep_emb, keep_base, keep_chars, keep_rows = L.emb, L.base, L.chars, L.rows
    all_fit = np.ones(len(L.rows), bool)
    L.emb = np.concatenate([L.emb, L.cache.embed(texts)])
    L.base = np.concatenate([L.base, L.cheap(texts)])
    L.chars = np.concatenate([L.chars, [len(t) for t in texts]])
    global maths_rows
    maths_rows = np.concatenate([maths_rows, np.zeros(len(texts), bool)])
    L.rows = L.rows + [None] * len(texts)
    fit = np.concatenate([all_fit, np.zeros(len(texts), bool)])
    E.train_rows = keep_rows
    b0, b1, pm = blend(fit)
    print(f"obvious cases AUC: clf task-cheap {auc(b0[-40:-20], b0[-20:]):.3f}, blend {auc(b1[-40:-20], b1[-20:]):.3f}")
    for t, p, s0, s1 in zip(texts, pm[-40:], b0[-40:], b1[-40:]):
        print(f"  p_maths {p:.2f} raw {s0:+.2f} -> {s1:+.2f}  {t[:60]}")
if __name__ == "__main__" and "--extra" in __import__("sys").argv:
    extra_measures()
