"""The recommended router recipe in plain numpy (port target for the ONNX head).

    weights = fit_recipe(train_rows, embed_fn)          # train_rows: rows of /work/shared/data/train/*.jsonl
    scores  = score_recipe(weights, embeddings, prompts) # P(strong needed)-like score in (0, 1); rank is what matters

Recipe ("mix", selected on held-out train/ rows, see FINDINGS.md):
  targets  per prompt, "how hard is this prompt for models in general", standardised per training file:
           mmlu_pro, routerbench_train: 1PL IRT difficulty b_i over all the file's models;
           routerdc_small_models, alpaca_eval_prefs: 1 - mean score over models;
           arena_bench_v1: minus the mean of per-model z-scored judge ratings;
           gsm8k_train: log(1 + number of <<calculator>> steps in the gold solution) (self-made label).
  heads    chat expert = ridge on arena_bench_v1 + alpaca_eval_prefs rows (alpha_chat);
           task expert = ridge on the other files (alpha);  features are standardised inside ridge;
           gate = logistic regression chat-vs-task (balanced), p = sigmoid(gate).
  score    s = p * z_chat + (1 - p) * z_task   (each expert z-scored on its own training rows), then sigmoid(s).
Embeddings: all-MiniLM-L6-v2, mean pooling, L2-normalised, max 256 tokens; RouterBench few-shot prompts are reduced
to the asked question for training (question_text).  Everything below is linear algebra: an ONNX head is
3 MatMul/Add + Sigmoid + Mul/Add on the 384-d embedding.
Static alternative: embed_fn = mean over the prompt's token ids (no [CLS]/[SEP], no normalisation) of
research/cache/static_table0.npy rows; then every dot product folds into a per-token table T = table0 @ [gate, chat, task].
Held-out selection 0.550 (MiniLM) / 0.546 (static); benchmark numbers in research/FINDINGS.md.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from common import question_text  # noqa: F401  (one copy, shared with the experiments)
from router_training.mix import _irt_difficulty  # the production IRT, same defaults

DEFAULT_CONFIG = {"alpha": 10.0, "alpha_chat": 1000.0, "alpha_gate": 1.0, "std": "file"}
CHAT_FILES = ("arena_bench_v1", "alpaca_eval_prefs")


def file_of(row: dict) -> str:
    return row["id"].split("/", 1)[0]


def difficulty_target(file: str, rows: Sequence[dict]) -> np.ndarray:
    if file == "gsm8k_train":
        return np.log1p(np.array([r["answer"].count("<<") for r in rows], float))
    models = sorted({m for r in rows for m in r["scores"]})
    S = np.zeros((len(rows), len(models)))
    M = np.zeros_like(S)
    for i, r in enumerate(rows):
        for j, m in enumerate(models):
            if m in r["scores"]:
                S[i, j] = r["scores"][m]
                M[i, j] = 1
    if file == "arena_bench_v1":
        S = (S - 1) / 9
        mu = (S * M).sum(0) / M.sum(0)
        sd = np.sqrt((((S - mu) ** 2) * M).sum(0) / M.sum(0))
        return -(((S - mu) / sd) * M).sum(1) / M.sum(1)
    if file in ("mmlu_pro", "routerbench_train"):
        return _irt_difficulty(S, M)
    return 1 - (S * M).sum(1) / M.sum(1)


def _ridge(X, y, w, alpha):
    mu = np.average(X, axis=0, weights=w)
    sd = np.sqrt(np.average((X - mu) ** 2, axis=0, weights=w)) + 1e-6
    Z = (X - mu) / sd
    ym = np.average(y, weights=w)
    beta = np.linalg.solve((Z * w[:, None]).T @ Z + alpha * np.eye(Z.shape[1]), (Z * w[:, None]).T @ (y - ym))
    coef = beta / sd
    return coef, ym - mu @ coef


def _logistic(X, y, w, alpha, iters=300, lr=0.5):
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    beta, b0 = np.zeros(Z.shape[1]), 0.0
    wn = w / w.sum()
    for _ in range(iters):
        g = 1 / (1 + np.exp(-(Z @ beta + b0))) - y
        beta -= lr * (Z.T @ (wn * g) + alpha * beta / len(y))
        b0 -= lr * (wn * g).sum()
    return beta / sd, b0 - (mu / sd) @ beta


def fit_recipe(train_rows: Sequence[dict], embed_fn: Callable[[list[str]], np.ndarray],
               config: dict | None = None, exclude_prompts: set[str] | None = None) -> dict:
    """train_rows: rows of the train/ files (file taken from the id prefix; rows without labels are skipped,
    except gsm8k_train which needs its `answer`). embed_fn(texts) -> [n, 384] L2-normalised embeddings.
    exclude_prompts: prompts never to train on (the research run excluded gsm8k_train questions that are also
    RouterDC gsm8k rows, to keep its held-out check clean; pass None for production)."""
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    by_file: dict[str, list[dict]] = {}
    for r in train_rows:
        f = file_of(r)
        if f == "gsm8k_train":
            if not r.get("answer"):
                continue
            if exclude_prompts and r["prompt"].strip() in exclude_prompts:
                continue
        elif not r.get("scores"):
            continue
        by_file.setdefault(f, []).append(r)
    X, y, w, chat = [], [], [], []
    for f in sorted(by_file):
        rows = by_file[f]
        t = difficulty_target(f, rows)
        if cfg["std"] == "file":
            t = (t - t.mean()) / (t.std() + 1e-9)
        X.append(np.asarray(embed_fn([question_text(r) for r in rows]), np.float64))
        y.append(t)
        w.append(np.ones(len(rows)))
        chat.append(np.full(len(rows), f in CHAT_FILES))
    X, y, w, chat = np.vstack(X), np.concatenate(y), np.concatenate(w), np.concatenate(chat)
    cc, cb = _ridge(X[chat], y[chat], w[chat], cfg["alpha_chat"])
    tc, tb = _ridge(X[~chat], y[~chat], w[~chat], cfg["alpha"])
    wg = np.where(chat, 0.5 / chat.sum(), 0.5 / (~chat).sum())
    gc, gb = _logistic(X, chat.astype(float), wg, cfg["alpha_gate"])
    sc, st = X[chat] @ cc + cb, X[~chat] @ tc + tb
    return {
        "kind": "mix-difficulty", "config": cfg,
        "chat_coef": cc.astype(np.float32), "chat_bias": float(cb),
        "chat_mean": float(sc.mean()), "chat_std": float(sc.std()),
        "task_coef": tc.astype(np.float32), "task_bias": float(tb),
        "task_mean": float(st.mean()), "task_std": float(st.std()),
        "gate_coef": gc.astype(np.float32), "gate_bias": float(gb),
    }


def score_recipe(weights: dict, embeddings: np.ndarray, prompts: Sequence[str] | None = None) -> np.ndarray:
    """embeddings: [n, 384] L2-normalised MiniLM embeddings of the prompts (prompts unused by this recipe)."""
    E = np.asarray(embeddings, np.float64)
    p = 1 / (1 + np.exp(-(E @ weights["gate_coef"] + weights["gate_bias"])))
    zc = (E @ weights["chat_coef"] + weights["chat_bias"] - weights["chat_mean"]) / weights["chat_std"]
    zt = (E @ weights["task_coef"] + weights["task_bias"] - weights["task_mean"]) / weights["task_std"]
    return 1 / (1 + np.exp(-(p * zc + (1 - p) * zt)))
