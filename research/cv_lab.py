"""Group K-fold selection: every labelled group is held out once; mean APGR over all groups (and per task kind)."""
from __future__ import annotations

import sys
import time

import numpy as np

import ens_lab as E
from ens_lab import L
from sel_lab import STRONG, WEAK
from router_training.evaluate import apgr
from router_training.selection import group_pairs

ALL = np.ones(len(L.rows), bool)
GROUPS = group_pairs(L.rows, ALL, STRONG, WEAK)
names = sorted(GROUPS, key=lambda g: -len(GROUPS[g][0]))
FOLD_OF = {g: i % 5 for i, g in enumerate(names)}
fold = np.array([FOLD_OF.get(r.group, -1) for r in L.rows])


def kind_of(g):
    if g.startswith(("arena", "alpaca")):
        return "chat"
    if "gsm8k" in g or g.endswith("math"):
        return "maths"
    if "mbpp" in g or "humaneval" in g:
        return "code"
    return "knowledge"


def cv_scores(kind, params, features="none", **over):
    out = np.zeros(len(L.rows))
    for k in range(5):
        L.held = fold == k
        E.tr = ~L.held
        E.train_rows = [r for r, h in zip(L.rows, L.held) if not h]
        s = E.held_scores(kind, params, features, **over)
        out[L.held] = np.asarray(s)[L.held]
    return out


def report(name, s):
    per = {g: apgr(s[idx], sl, wl) for g, (idx, sm, wm, sl, wl) in GROUPS.items()}
    kinds = {}
    for g, v in per.items():
        kinds.setdefault(kind_of(g), []).append(v)
    km = {k: float(np.mean(v)) for k, v in kinds.items()}
    line = f"{name:28s} all={np.mean(list(per.values())):.4f} kinds={np.mean(list(km.values())):.4f} " + \
        " ".join(f"{k}={v:.3f}" for k, v in sorted(km.items()))
    print(line, flush=True)
    return per


if __name__ == "__main__":
    print({g: (len(GROUPS[g][0]), GROUPS[g][1].split('/')[-1], GROUPS[g][2].split('/')[-1], FOLD_OF[g]) for g in names})
    res = {}
    for spec in sys.argv[1:]:
        name, kind, features, alpha = spec.split(":")
        t = time.time()
        params = {"alpha": float(alpha)} if kind == "clf" else {"alpha": float(alpha), "alpha_chat": 1000.0}
        s = cv_scores(kind, params, features)
        res[name] = s
        report(name, s)
        print("   ", round(time.time() - t, 1), "s", flush=True)
    np.savez(f"/tmp/cv_{'_'.join(a.split(':')[0] for a in sys.argv[1:])}.npz", **res)
