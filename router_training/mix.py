"""The "mix" head (docs/research.md): a chat expert and a task expert blended by a chat-vs-task gate.

    targets  per prompt "how hard is this prompt for models in general", z-scored per training file:
             the correctness files (mmlu_pro, routerbench_train, zeroeval_crux, zeroeval_math_l5): 1PL IRT
             difficulty over the file's models;
             a 1-10 judge file (arena_bench_v1): minus the mean of per-model z-scored ratings;
             a file without labels whose rows carry a worked `answer` (gsm8k_train): log(1 + number of
             `<<calculator>>` steps in it), a label made from the training file itself;
             any other file: 1 - mean score over the models that answered.
    experts  chat = ridge on the chat files' rows, task = ridge on the other rows (features standardised inside the
             ridge, folded back into plain coefficients); each expert's output z-scored on its own training rows.
    gate     balanced logistic regression chat-vs-task, p = sigmoid(gate).
    score    sigmoid(p * z_chat + (1 - p) * z_task).

Everything folds into one [D, 3] matrix and a [3] bias on the prompt embedding (columns gate, chat, task).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from router_training.data import Row, unit_scores

CHAT_FILES = ("arena_bench_v1", "alpaca_eval_prefs")
IRT_FILES = ("mmlu_pro", "routerbench_train", "zeroeval_crux", "zeroeval_math_l5")  # 0/1 correctness, many models
_CHOICE_SUFFIX = re.compile(r"\nPrint only a single choice.*$", flags=re.S)


def question_text(row: Row) -> str:
    """RouterBench few-shot multiple-choice prompts reduced to the asked question (used for fitting only)."""
    if row.group.split("/", 1)[-1] in ("arc-challenge", "winogrande"):
        return _CHOICE_SUFFIX.sub("", row.prompt.strip().split("\n\n")[-1])
    return row.prompt


def self_labelled(row: Row) -> bool:
    """A row without model labels whose worked `answer` gives the step-count target."""
    return len(row.scores) < 2 and isinstance(row.extra.get("answer"), str)


def _irt_difficulty(S: np.ndarray, M: np.ndarray, iters: int = 300, lr: float = 0.5, l2: float = 0.01) -> np.ndarray:
    n, m = S.shape
    b, th = np.zeros(n), np.zeros(m)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(th[None] - b[:, None])))
        r = (S - p) * M
        b -= lr * (r.sum(1) / np.maximum(M.sum(1), 1) + l2 * b)
        th += lr * (r.sum(0) / np.maximum(M.sum(0), 1))
        th -= th.mean()
    return b


def file_target(file: str, rows: Sequence[Row]) -> np.ndarray:
    """The raw difficulty target of one file's rows (before the per-file z-score)."""
    if all(self_labelled(r) for r in rows):
        return np.log1p(np.array([r.extra["answer"].count("<<") for r in rows], dtype=np.float64))
    unit = [unit_scores(r) for r in rows]
    models = sorted({m for s in unit for m in s})
    S = np.zeros((len(rows), len(models)))
    M = np.zeros_like(S)
    col = {m: j for j, m in enumerate(models)}
    for i, s in enumerate(unit):
        for m, v in s.items():
            S[i, col[m]], M[i, col[m]] = v, 1.0
    if rows[0].scale == "judge_1_10":
        count = np.maximum(M.sum(0), 1)
        mu = (S * M).sum(0) / count
        sd = np.sqrt((((S - mu) ** 2) * M).sum(0) / count) + 1e-9
        return -(((S - mu) / sd) * M).sum(1) / np.maximum(M.sum(1), 1)
    if file in IRT_FILES:
        return _irt_difficulty(S, M)
    return 1 - (S * M).sum(1) / np.maximum(M.sum(1), 1)


def mix_targets(rows: Sequence[Row]) -> np.ndarray:
    """Per-row targets, z-scored within each training file."""
    target = np.zeros(len(rows))
    files = np.array([r.file for r in rows])
    for file in sorted(set(files)):
        idx = np.flatnonzero(files == file)
        t = file_target(file, [rows[i] for i in idx])
        target[idx] = (t - t.mean()) / (t.std() + 1e-9)
    return target


def _ridge(X: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    mu = X.mean(0)
    sd = X.std(0) + 1e-6
    Z = (X - mu) / sd
    ym = y.mean()
    beta = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (y - ym))
    coef = beta / sd
    return coef, float(ym - mu @ coef)


def _logistic(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float, iters: int = 300, lr: float = 0.5
) -> tuple[np.ndarray, float]:
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    beta, b0 = np.zeros(Z.shape[1]), 0.0
    wn = w / w.sum()
    for _ in range(iters):
        g = 1 / (1 + np.exp(-(Z @ beta + b0))) - y
        beta -= lr * (Z.T @ (wn * g) + alpha * beta / len(y))
        b0 -= lr * (wn * g).sum()
    return beta / sd, float(b0 - (mu / sd) @ beta)


@dataclass
class MixHead:
    W: np.ndarray  # [D, 3]: columns gate logit, z_chat, z_task (biases and z-scoring folded in)
    b: np.ndarray  # [3]

    def parts(self, emb: np.ndarray) -> np.ndarray:
        return np.asarray(emb, dtype=np.float64) @ self.W.astype(np.float64) + self.b.astype(np.float64)

    def score(self, emb: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        h = self.parts(emb)
        p = 1 / (1 + np.exp(-h[:, 0]))
        return 1 / (1 + np.exp(-(p * h[:, 1] + (1 - p) * h[:, 2])))


def train_mix(
    emb: np.ndarray,
    rows: Sequence[Row],
    alpha: float = 10.0,
    alpha_chat: float = 1000.0,
    alpha_gate: float = 1.0,
    chat_files: Sequence[str] = CHAT_FILES,
) -> MixHead:
    """emb: [N, D] embeddings of question_text(row) for rows (labelled or self-labelled)."""
    X = np.asarray(emb, dtype=np.float64)
    y = mix_targets(rows)
    chat = np.array([r.file in chat_files for r in rows])
    if chat.sum() < 10 or (~chat).sum() < 10:
        raise ValueError(
            f"the mix head needs at least 10 chat rows ({', '.join(chat_files)}) and 10 other rows; "
            f"got {int(chat.sum())} and {int((~chat).sum())}"
        )
    cc, cb = _ridge(X[chat], y[chat], alpha_chat)
    tc, tb = _ridge(X[~chat], y[~chat], alpha)
    gate_w = np.where(chat, 0.5 / chat.sum(), 0.5 / (~chat).sum())
    gc, gb = _logistic(X, chat.astype(np.float64), gate_w, alpha_gate)
    sc, st = X[chat] @ cc + cb, X[~chat] @ tc + tb
    c_mean, c_std = sc.mean(), sc.std() + 1e-9
    t_mean, t_std = st.mean(), st.std() + 1e-9
    W = np.stack([gc, cc / c_std, tc / t_std], axis=1)
    b = np.array([gb, (cb - c_mean) / c_std, (tb - t_mean) / t_std])
    return MixHead(W=W.astype(np.float32), b=b.astype(np.float32))
