"""Group K-fold (cv_lab.py folds) for the clf task-cheap head with and without the maths blend: pair APGR and
difficulty APGR (a strong model that is always right against each prompt's mean score) over all 23 groups."""
import numpy as np

import cv_lab as C
import maths_blend as MB
from ens_lab import L
from router_training.evaluate import apgr

mean_score = np.array([np.mean([(v - 1) / 9 if r.scale == "judge_1_10" else v for v in r.scores.values()])
                       for r in L.rows])
cv_base, cv_blend = np.zeros(len(L.rows)), np.zeros(len(L.rows))
for k in range(5):
    f = C.fold == k
    b0, b1, _ = MB.blend(~f)
    cv_base[f], cv_blend[f] = b0[f], b1[f]
for name, s in (("clf task-cheap", cv_base), ("+ maths expert", cv_blend), ("log length", np.log(L.chars))):
    C.report(name, s)
    per = {}
    for g in C.GROUPS:
        idx = np.flatnonzero((L.group == g) & np.array([len(r.scores) >= 3 for r in L.rows]))
        per[g] = apgr(s[idx], np.ones(len(idx)), mean_score[idx])
    kinds = {}
    for g, v in per.items():
        kinds.setdefault(C.kind_of(g), []).append(v)
    print(f"   difficulty APGR: all={np.mean(list(per.values())):.4f} " +
          " ".join(f"{k}={np.mean(v):.3f}" for k, v in sorted(kinds.items())), flush=True)
