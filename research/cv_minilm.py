"""Same group K-fold selection as cv_lab.py, plain clf, on MiniLM (fp32, research cache) instead of the static encoder."""
import numpy as np
import cv_lab as C
from ens_lab import L

by_id = {}
for f in ["mmlu_pro", "routerbench_train", "arena_bench_v1", "routerdc_small_models", "alpaca_eval_prefs"]:
    z = np.load(f"cache/{f}.npz")
    by_id.update({str(i): e for i, e in zip(z["ids"], z["emb"])})
missing = sum(r.id not in by_id for r in L.rows)
print("rows without a MiniLM embedding:", missing)
static = L.emb
L.emb = np.stack([by_id.get(r.id, np.zeros(384, np.float32)) for r in L.rows])
for a in (1.0, 3.0, 10.0, 30.0):
    C.report(f"clf minilm alpha {a:g}", C.cv_scores("clf", {"alpha": a}))
L.emb = np.concatenate([static, L.emb], axis=1)
C.report("clf static+minilm a3", C.cv_scores("clf", {"alpha": 3.0}))
