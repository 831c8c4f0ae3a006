"""RouterDC gsm8k held out: APGR for every model pair with a gap of 0.2 or more, base task-cheap clf against the
maths blend (lab version of --maths-expert)."""
import numpy as np

from maths_blend import L, blend
from router_training.evaluate import apgr

dc = np.array([r.group == "routerdc_small_models/gsm8k" for r in L.rows])
base_raw, blended, _ = blend(~dc)
models = sorted(L.rows[int(np.flatnonzero(dc)[0])].scores)
S = np.array([[L.rows[i].scores[m] for m in models] for i in np.flatnonzero(dc)])
rows = []
for a in range(len(models)):
    for b in range(len(models)):
        if S[:, a].mean() - S[:, b].mean() >= 0.2:
            rows.append((models[a].split("/")[-1], models[b].split("/")[-1],
                         apgr(base_raw[dc], S[:, a], S[:, b]), apgr(blended[dc], S[:, a], S[:, b]),
                         apgr(np.log(L.chars[dc]), S[:, a], S[:, b])))
for r in rows:
    print(f"{r[0]:28s} > {r[1]:24s} base {r[2]:.3f} blend {r[3]:.3f} length {r[4]:.3f}")
print(f"mean over {len(rows)} pairs: base {np.mean([r[2] for r in rows]):.3f} blend {np.mean([r[3] for r in rows]):.3f} "
      f"length {np.mean([r[4] for r in rows]):.3f}")
