"""Held-out scores of each shipped router kind (fitted on non-held-out rows), and ensembles of them, on SEL."""
from __future__ import annotations

import sys
import time

import numpy as np

from sel_lab import HOLD, TRAIN, FILES, lab
from router_training import cheap_features as CF
from router_training import train as T
from router_training.heads import length_feature
from router_training.mix import question_text

L = lab()
base_args = T.build_parser().parse_args(
    sum([["--data", str(TRAIN / f"{f}.jsonl")] for f in FILES], []) + sum([["--holdout", h] for h in HOLD], [])
    + ["--out", "/tmp/x", "--target", "difficulty_centered", "--encoder", "static", "--epochs", "200"])
tr = ~L.held
train_rows = [r for r, h in zip(L.rows, L.held) if not h]
models = sorted({m for r in L.rows for m in r.scores})
lens = length_feature(L.chars)


def held_scores(kind, params, features="none", **over):
    a = base_args
    a.features = features
    for k, v in over.items():
        setattr(a, k, v)
    X = L.base if features != "none" else lens
    if features == "task-cheap":
        files = {r.file for r in L.rows}
        pool = L.rows + L.answer_rows
        a.gate_pool = (np.concatenate([L.emb, L.answer_emb]), np.array([CF.task_of(r.file, r.group) for r in pool]),
                       [r.group for r in pool], [r.file in files for r in pool])
        a.held_groups = {r.group for r, h in zip(L.rows, L.held) if h} | set(HOLD)
    if kind == "mix":
        rows = train_rows + L.answer_rows
        emb = np.concatenate([L.cache.embed([question_text(r) for r in train_rows]),
                              L.cache.embed([question_text(r) for r in L.answer_rows])])
        head = T._fit(kind, emb, None, rows, models, a, params)
    else:
        head = T._fit(kind, L.emb[tr], X[tr], train_rows, models, a, params)
    return T._pair_scores(head, L.emb, X, a.strong, a.weak) if kind != "mf" else head


def z(s):
    s = np.asarray(s, float)
    return (s - s[tr].mean()) / (s[tr].std() + 1e-9)


if __name__ == "__main__":
    out = {}
    t = time.time()
    out["clf"] = held_scores("clf", {"alpha": 3.0})
    print("clf", round(L.sel(out["clf"], True), 4), round(time.time() - t, 1), flush=True)
    out["clf_tc"] = held_scores("clf", {"alpha": 3.0}, features="task-cheap")
    print("clf_tc", round(L.sel(out["clf_tc"], True), 4), round(time.time() - t, 1), flush=True)
    out["mix"] = held_scores("mix", {"alpha": 10.0, "alpha_chat": 1000.0})
    print("mix", round(L.sel(out["mix"], True), 4), round(time.time() - t, 1), flush=True)
    mf = held_scores("mf", {"dim": 64, "weighting": "prompt"})
    # MF scores each held-out group on that group's own pair
    mfs = np.zeros(len(L.rows))
    for g, (idx, s, w, sl, wl) in L.groups.items():
        mfs[idx] = mf.pair_score(L.emb[idx], lens[idx], s, w)
    out["mf"] = mfs
    print("mf", round(L.sel(out["mf"], True), 4), round(time.time() - t, 1), flush=True)
    np.savez("/tmp/ens_lab.npz", **out)
    names = list(out)
    import itertools
    for k in range(2, len(names) + 1):
        for combo in itertools.combinations(names, k):
            s = sum(z(out[n]) for n in combo)
            print("+".join(combo), round(L.sel(s), 4))
