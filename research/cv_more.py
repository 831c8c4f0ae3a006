import sys
import numpy as np
import cv_lab as C
import ens_lab as E
specs = [("clf1", {"alpha": 1.0}, "none", {}), ("clf10", {"alpha": 10.0}, "none", {}), ("clf30", {"alpha": 30.0}, "none", {}),
         ("clf3_unc", {"alpha": 3.0}, "none", {"target": "difficulty"}),
         ("clf3_sbw", {"alpha": 3.0}, "none", {"target": "strong_beats_weak"}),
         ("clf3_nolen", {"alpha": 3.0}, "none", {"no_length": True}),
         ("tc10", {"alpha": 10.0}, "task-cheap", {}), ("tc1", {"alpha": 1.0}, "task-cheap", {})]
res = {}
for name, params, feat, over in specs:
    s = C.cv_scores("clf", params, feat, **over)
    for k in over:
        setattr(E.base_args, k, {"target": "difficulty_centered", "no_length": False}[k])
    res[name] = s
    C.report(name, s)
np.savez("/tmp/cv_more.npz", **res)
