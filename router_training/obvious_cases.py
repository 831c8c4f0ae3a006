"""Obvious cases: does a router score hand-written hard prompts above trivial ones?

20 trivial prompts ("hi", "Say hello in French.") against 20 hard ones (proofs, multi-step maths, systems
design), in obvious_cases.json. The measure is the AUC of the router's score (0.5 = chance). It is a guard rail,
not a benchmark: never used for training or selection.

    python -m router_training.obvious_cases [ROUTER_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CASES = Path(__file__).with_name("obvious_cases.json")


def load_cases() -> dict[str, list[str]]:
    return json.loads(CASES.read_text())


def auc(easy_scores: np.ndarray, hard_scores: np.ndarray) -> float:
    """P(a hard prompt scores above an easy one), ties counting half."""
    easy, hard = np.asarray(easy_scores, float)[None, :], np.asarray(hard_scores, float)[:, None]
    return float(((hard > easy) + 0.5 * (hard == easy)).mean())


def obvious_cases_auc(router) -> float:
    cases = load_cases()
    return auc(router.score(cases["easy"]), router.score(cases["hard"]))


def main(argv: list[str] | None = None) -> int:
    from hybrid_router.routing import load_router

    for path in (argv if argv is not None else sys.argv[1:]) or [None]:
        print(f"{path or 'default router'}: obvious-cases AUC {obvious_cases_auc(load_router(path)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
