"""Group K-fold (cv_lab.py's protocol: 23 labelled groups, 5 folds) for the session-3 easy rows: the task-gated
clf with and without router_training/easy_prompts.jsonl (anchored), alpha 0.3 as shipped. The easy rows are
always on the training side, like gsm8k_train's answer rows; no benchmark is read.

    OMP_NUM_THREADS=1 python cv_easy.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import cv_lab as C
import ens_lab as E
from ens_lab import L
from router_training import cheap_features as CF
from router_training import data as D
from router_training import train as T

EASY = D.read_rows([Path(__file__).resolve().parents[1] / "router_training" / "easy_prompts.jsonl"])
EASY_EMB = L.cache.embed([r.prompt for r in EASY])
EASY_X = L.cheap([r.prompt for r in EASY])


def held_scores_easy(params: dict) -> np.ndarray:
    a = E.base_args
    a.features, a.anchored_file = "task-cheap", ["easy_prompts"]
    files = {r.file for r in L.rows} | {"easy_prompts"}
    pool = L.rows + EASY + L.answer_rows
    a.gate_pool = (np.concatenate([L.emb, EASY_EMB, L.answer_emb]),
                   np.array([CF.task_of(r.file, r.group) for r in pool]),
                   [r.group for r in pool], [r.file in files for r in pool])
    a.held_groups = {r.group for r, h in zip(L.rows, L.held) if h}
    head = T._fit("clf", np.concatenate([L.emb[E.tr], EASY_EMB]), np.concatenate([L.base[E.tr], EASY_X]),
                  E.train_rows + EASY, E.models, a, params)
    a.anchored_file = None
    return T._pair_scores(head, L.emb, L.base, a.strong, a.weak)


def cv_easy(params: dict) -> np.ndarray:
    out = np.zeros(len(L.rows))
    for k in range(5):
        L.held = C.fold == k
        E.tr = ~L.held
        E.train_rows = [r for r, h in zip(L.rows, L.held) if not h]
        out[L.held] = np.asarray(held_scores_easy(params))[L.held]
    return out


if __name__ == "__main__":
    print(f"{len(EASY)} easy rows")
    C.report("task-cheap a0.3", C.cv_scores("clf", {"alpha": 0.3}, "task-cheap"))
    C.report("task-cheap a0.3 + easy", cv_easy({"alpha": 0.3}))
