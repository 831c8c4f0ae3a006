"""GSM8K-like held-out check: rank correlation of scores with RouterDC gsm8k difficulty (1 - mean of 7 models).

Every predictor here is fitted without the RouterDC gsm8k rows."""
import numpy as np

import ens_lab as E
from ens_lab import L

dc = np.array([r.group == "routerdc_small_models/gsm8k" for r in L.rows])
diff = np.array([1 - np.mean(list(r.scores.values())) for r in L.rows])
L.held = dc
E.tr = ~dc
E.train_rows = [r for r, h in zip(L.rows, dc) if not h]


def rho(s):
    rank = lambda v: np.argsort(np.argsort(v))
    return np.corrcoef(rank(np.asarray(s)[dc]), rank(diff[dc]))[0, 1]


print("log length           ", round(rho(np.log(L.chars)), 3))
print("clf a3               ", round(rho(E.held_scores("clf", {"alpha": 3.0})), 3))
print("clf task-cheap a3    ", round(rho(E.held_scores("clf", {"alpha": 3.0}, "task-cheap")), 3))
# steps regressor on gsm8k_train (answer-only rows), static embedding + cheap features
steps = np.array([np.log1p(r.extra["answer"].count("<<")) for r in L.answer_rows])
Xa = np.concatenate([L.answer_emb, L.cheap([r.prompt for r in L.answer_rows])], 1)
Xd = np.concatenate([L.emb, L.base], 1)
for alpha in (1, 10, 100):
    from router_training.mix import _ridge
    w, b = _ridge(Xa, steps, float(alpha))
    print(f"steps ridge a{alpha:<4d}      ", round(rho(Xd @ w + b), 3))
    w2, b2 = _ridge(L.cheap([r.prompt for r in L.answer_rows]), steps, float(alpha))
    print(f"steps ridge cheap a{alpha:<4d}", round(rho(L.base @ w2 + b2), 3))
