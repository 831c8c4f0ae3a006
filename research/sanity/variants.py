"""Obvious-cases AUC of router variants fitted on all training rows (research/sel_lab.py pipeline)."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import ens_lab as E  # noqa: E402
from ens_lab import L  # noqa: E402
from router_training.obvious_cases import auc, load_cases  # noqa: E402
PROMPTS = load_cases()
from router_training.heads import length_feature  # noqa: E402

E.tr = np.ones(len(L.rows), bool)
L.held = ~E.tr
E.train_rows = list(L.rows)
texts = PROMPTS["easy"] + PROMPTS["hard"]
emb = L.cache.embed(texts)
base = L.cheap(texts)
lens = length_feature(np.array([len(t) for t in texts], float))
n = len(PROMPTS["easy"])
specs = [("clf a3", "clf", {"alpha": 3.0}, "none", {}), ("clf a3 no length", "clf", {"alpha": 3.0}, "none", {"no_length": True}),
         ("clf a3 uncentred", "clf", {"alpha": 3.0}, "none", {"target": "difficulty"}),
         ("clf task-cheap a3", "clf", {"alpha": 3.0}, "task-cheap", {}),
         ("clf cheap a3", "clf", {"alpha": 3.0}, "cheap", {})]
for name, kind, params, feat, over in specs:
    a = E.base_args
    for k, v in over.items():
        setattr(a, k, v)
    a.features = feat
    X = base if feat != "none" else lens
    import router_training.train as T
    if feat == "task-cheap":
        E.held_scores(kind, params, feat)  # sets the gate pool on args
    head = T._fit(kind, L.emb, (L.base if feat != "none" else length_feature(L.chars)), L.rows,
                  sorted({m for r in L.rows for m in r.scores}), a, params)
    s = head.score(emb, X)
    print(f"{name:22s} auc={auc(s[:n], s[n:]):.3f}  'hi'={s[3]:.3f}  easy mean {s[:n].mean():.3f} hard mean {s[n:].mean():.3f}")
    a.target, a.no_length = "difficulty_centered", False
