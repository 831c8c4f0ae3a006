"""Obvious-cases check: AUC of a router's scores for separating hand-written trivial prompts from hard ones.

Not a benchmark and not used for training; a guard rail that catches a router which sends "hi" to the strong model
and a multi-step maths problem to the weak one. Usage: python research/sanity/check.py [router dir ...]
"""
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "layers/router"))
from hybrid_router.routing import load_router  # noqa: E402

PROMPTS = json.loads((Path(__file__).parent / "prompts.json").read_text())


def auc(easy: np.ndarray, hard: np.ndarray) -> float:
    return float(np.mean([(h > e) + 0.5 * (h == e) for h in hard for e in easy]))


def check(scores_easy, scores_hard) -> dict:
    return {"auc": round(auc(np.asarray(scores_easy), np.asarray(scores_hard)), 3)}


if __name__ == "__main__":
    for d in sys.argv[1:] or [str(ROOT / "layers/router/hybrid_router/artifacts/default")]:
        r = load_router(d)
        e, h = r.score(PROMPTS["easy"]), r.score(PROMPTS["hard"])
        print(d, check(e, h), "easy mean %.3f hard mean %.3f" % (np.mean(e), np.mean(h)))
