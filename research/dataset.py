"""Assemble train rows, targets and cheap features for router research (train/ only; benchmarks for final eval)."""
from __future__ import annotations

import os
import re
import zlib
from dataclasses import dataclass, field

import numpy as np

from router_training.mix import _irt_difficulty
from common import BENCH_FILES, CACHE, STRONG, TRAIN_FILES, WEAK, load_bench, load_train, question_text

# For each labelled train file: the (strong, weak) pair used for held-out APGR (selection only).
SELECTION_PAIRS = {
    "mmlu_pro": ("gpt-4o-2024-05-13", WEAK),
    "routerbench_train": (STRONG, WEAK),
    "arena_bench_v1": (STRONG, WEAK),
    "alpaca_eval_prefs": (STRONG, WEAK),
    "routerdc_small_models": ("meta-math/MetaMath-Mistral-7B", "mistralai/Mistral-7B-v0.1"),
}


def group_of(file: str, row: dict) -> str:
    if file == "mmlu_pro":
        return "mmlu_pro:" + row["src"]
    if "dataset" in row:
        return f"{file}:{row['dataset']}"
    return file


def fold_of(file: str, row: dict, k: int = 5) -> int:
    """Fold id. MMLU-Pro is grouped by src (subject unseen in training); everything else by row id."""
    key = row["src"] if file == "mmlu_pro" else row["id"]
    return zlib.crc32(key.encode()) % k


irt_difficulty = _irt_difficulty  # router_training.mix: one copy of the 1PL IRT fit


@dataclass
class Part:
    file: str
    rows: list
    emb: np.ndarray
    ntok: np.ndarray
    targets: dict = field(default_factory=dict)
    groups: np.ndarray = None
    folds: np.ndarray = None


def score_matrix(rows, scale=lambda x: x):
    models = sorted({m for r in rows for m in r["scores"]})
    S = np.zeros((len(rows), len(models)))
    M = np.zeros_like(S)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m in r["scores"]:
                S[i, j] = scale(r["scores"][m])
                M[i, j] = 1
    return models, S, M


EMB_KIND = os.environ.get("ROUTER_EMB", "minilm")  # minilm | static0 | static


def _static_part(file: str, rows: list) -> Part:
    from static_embed import static_embed, token_ids
    table = np.load(CACHE / ("static_table0.npy" if EMB_KIND == "static0" else "static_table.npy"))
    ids = token_ids([question_text(r) for r in rows])
    emb = static_embed(table, ids)
    if os.environ.get("ROUTER_STATIC_NORM", "1") == "1":
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return Part(file, rows, emb, np.array([len(i) + 2 for i in ids], float))


def load_part(file: str) -> Part:
    rows = load_train(file) if file in TRAIN_FILES else load_bench(file, keep_contaminated=True)
    if EMB_KIND != "minilm":
        return _static_part(file, rows)
    full = file == "routellm_mmlu" and os.environ.get("ROUTER_FULL_MMLU") == "1"
    z = np.load(CACHE / (f"{file}_full.npz" if full else f"{file}.npz"))
    if len(z["ids"]) < len(rows):  # a cached random subset (embed_cache.py name:N)
        by_id = {r["id"]: r for r in rows}
        rows = [by_id[i] for i in z["ids"]]
    assert list(z["ids"]) == [r["id"] for r in rows]
    return Part(file, rows, z["emb"], z["ntok"].astype(float))


def train_parts() -> dict[str, Part]:
    parts = {}
    for f in TRAIN_FILES:
        p = load_part(f)
        rows = p.rows
        p.groups = np.array([group_of(f, r) for r in rows])
        p.folds = np.array([fold_of(f, r) for r in rows])
        if f == "gsm8k_train":
            steps = np.array([r["answer"].count("<<") for r in rows], float)
            sol_len = np.array([len(r["answer"]) for r in rows], float)
            p.targets["difficulty"] = np.log1p(steps)
            p.targets["sol_len"] = np.log(sol_len)
        else:
            scale = (lambda x: (x - 1) / 9) if f == "arena_bench_v1" else (lambda x: x)
            models, S, M = score_matrix(rows, scale)
            mean = (S * M).sum(1) / M.sum(1)
            p.targets["mean_wrong"] = 1 - mean
            if f == "arena_bench_v1":
                # per-model standardised judge scores, then the mean
                mu = (S * M).sum(0) / M.sum(0)
                sd = np.sqrt((((S - mu) ** 2) * M).sum(0) / M.sum(0))
                Z = (S - mu) / sd
                p.targets["difficulty"] = -(Z * M).sum(1) / M.sum(1)
            elif f in ("alpaca_eval_prefs", "routerdc_small_models"):
                p.targets["difficulty"] = 1 - mean
            else:
                p.targets["difficulty"] = irt_difficulty(S, M)
            sp, wp = SELECTION_PAIRS[f]
            js, jw = models.index(sp), models.index(wp)
            p.targets["pair_gain"] = S[:, js] - S[:, jw]
            p.targets["weak_wrong"] = 1 - S[:, jw]
            p.strong_score, p.weak_score = S[:, js], S[:, jw]
        parts[f] = p
    # GSM8K train rows that share a question with routerdc's gsm8k rows: keep them out of training
    dc_q = {r["prompt"].strip() for r in parts["routerdc_small_models"].rows if r["dataset"] == "gsm8k"}
    g = parts["gsm8k_train"]
    g.overlap = np.array([r["prompt"].strip() in dc_q for r in g.rows])
    return parts


# ---------------- cheap features (all computable from the token ids inside the graph) ----------------
def cheap_features(texts: list[str], ntok: np.ndarray) -> np.ndarray:
    """[log ntok, digit share, option lines, code markers, math markers, question mark, non-ascii share]"""
    feats = []
    for t, n in zip(texts, ntok):
        L = max(len(t), 1)
        feats.append([
            np.log(n),
            sum(c.isdigit() for c in t) / L,
            len(re.findall(r"\n[A-J][.)] ", t)),
            len(re.findall(r"def |return |\{|\}|;|==|import |```", t)) / (1 + L / 100),
            len(re.findall(r"[=+*/^$]|\\frac|sqrt", t)) / (1 + L / 100),
            float("?" in t),
            sum(ord(c) > 127 for c in t) / L,
        ])
    return np.array(feats)
