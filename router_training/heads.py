"""Router heads trained on frozen prompt embeddings (torch here; the exported graph needs only onnxruntime).

Every head reads the prompt embedding e (L2-normalised, [D]) and a length feature
len = log(1 + characters) / 10, and ends in plain linear algebra so it can be written as ONNX nodes:

- MFHead (RouteLLM matrix factorisation over all models):
      logit_m = w2 . (v_m * (W1 e)) + b_m + c_m * len       P(a beats b) = sigmoid(logit_a - logit_b)
  folded for export into one matrix:  logits = e @ A + b + c * len,   A = W1^T diag(w2) V^T   [D, M]
- LinearHead ("clf"): ridge regression of a per-prompt target (difficulty by default) on [e, len],
  followed by a 1-D logistic calibration to P(strong needed) for the default pair: score = sigmoid(e.w + u*len + b).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def length_feature(char_counts: np.ndarray) -> np.ndarray:
    return (np.log1p(np.asarray(char_counts, dtype=np.float64)) / 10.0).astype(np.float32)


@dataclass
class MFHead:
    A: np.ndarray  # [D, M]
    b: np.ndarray  # [M]
    c: np.ndarray  # [M]
    models: list[str]

    def logits(self, emb: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return emb @ self.A + self.b[None, :] + lengths[:, None] * self.c[None, :]

    def pair_score(self, emb: np.ndarray, lengths: np.ndarray, strong: str, weak: str) -> np.ndarray:
        logits = self.logits(emb, lengths)
        diff = logits[:, self.models.index(strong)] - logits[:, self.models.index(weak)]
        return 1.0 / (1.0 + np.exp(-diff))


def train_mf(
    emb: np.ndarray,
    lengths: np.ndarray,
    pairs: tuple[np.ndarray, ...],
    models: list[str],
    dim: int = 128,
    epochs: int = 300,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    use_length: bool = True,
    per_prompt: bool = False,
) -> MFHead:
    """Full-batch Adam on the pairwise logistic loss over every (prompt, model a, model b) outcome.

    per_prompt weights each outcome by 1 / (outcomes of its prompt), so every prompt counts the same
    whatever the number of models that answered it; otherwise every outcome counts the same.
    """
    import torch

    torch.manual_seed(seed)
    rows, a_idx, b_idx, labels = (torch.as_tensor(x) for x in pairs)
    e = torch.as_tensor(emb, dtype=torch.float32)
    ln = torch.as_tensor(lengths, dtype=torch.float32)
    n_models, d_in = len(models), emb.shape[1]
    W1 = torch.nn.Parameter(torch.randn(dim, d_in) * (1.0 / np.sqrt(d_in)))
    V = torch.nn.Parameter(torch.randn(n_models, dim) * 0.1)
    w2 = torch.nn.Parameter(torch.ones(dim))
    b = torch.nn.Parameter(torch.zeros(n_models))
    c = torch.nn.Parameter(torch.zeros(n_models))
    params = [W1, V, w2, b] + ([c] if use_length else [])
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if per_prompt:
        counts = torch.bincount(rows, minlength=emb.shape[0]).to(torch.float32)
        weight = 1.0 / counts[rows]
        weight = weight / weight.mean()
    else:
        weight = torch.ones(len(rows))
    loss_fn = torch.nn.BCEWithLogitsLoss(weight=weight)
    for _ in range(max(1, epochs)):
        optimizer.zero_grad()
        proj = e @ W1.T  # [N, dim]
        logits = proj @ (V * w2).T + b + ln[:, None] * c  # [N, M]
        diff = logits[rows, a_idx] - logits[rows, b_idx]
        loss = loss_fn(diff, labels)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        A = (W1.T @ (V * w2).T).numpy().astype(np.float32)
        return MFHead(
            A=A,
            b=b.detach().numpy().astype(np.float32),
            c=(c if use_length else torch.zeros_like(c)).detach().numpy().astype(np.float32),
            models=list(models),
        )


@dataclass
class LinearHead:
    w: np.ndarray  # [D]
    u: float  # length weight
    b: float

    def raw(self, emb: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return emb @ self.w + self.u * lengths + self.b

    def score(self, emb: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(emb, lengths)))


def fit_ridge(
    emb: np.ndarray,
    lengths: np.ndarray,
    target: np.ndarray,
    alpha: float = 1.0,
    weights: np.ndarray | None = None,
    use_length: bool = True,
) -> tuple[np.ndarray, float, float]:
    """Weighted ridge on [e, len, 1] (intercept not penalised). Returns (w, u, b)."""
    n = emb.shape[0]
    X = np.hstack(
        [emb, (lengths if use_length else np.zeros_like(lengths))[:, None], np.ones((n, 1), dtype=np.float32)]
    ).astype(np.float64)
    sw = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    Xw = X * sw[:, None]
    penalty = alpha * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0
    if not use_length:
        penalty[-2, -2] = 1e6
    coef = np.linalg.solve(X.T @ Xw + penalty, Xw.T @ np.asarray(target, dtype=np.float64))
    return coef[:-2].astype(np.float32), float(coef[-2]), float(coef[-1])


def fit_logistic_1d(x: np.ndarray, y: np.ndarray, iters: int = 200) -> tuple[float, float]:
    """sigmoid(a*x + c) fitted by Newton's method (y may be soft). Returns (a, c)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    a, c = 1.0, 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a * x + c)))
        g = np.array([np.sum((p - y) * x), np.sum(p - y)])
        w = p * (1 - p) + 1e-9
        H = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]]) + 1e-6 * np.eye(2)
        step = np.linalg.solve(H, g)
        a, c = a - step[0], c - step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(c)


def train_clf(
    emb: np.ndarray,
    lengths: np.ndarray,
    target: np.ndarray,
    cal_raw_mask: np.ndarray,
    cal_labels: np.ndarray,
    alpha: float = 1.0,
    use_length: bool = True,
) -> LinearHead:
    """Ridge on `target` (rows with a finite target), then calibrate sigmoid(a*raw + c) on the labelled pair rows."""
    ok = np.isfinite(target)
    w, u, b = fit_ridge(emb[ok], lengths[ok], target[ok], alpha=alpha, use_length=use_length)
    raw = emb @ w + u * lengths + b
    if cal_raw_mask.sum() >= 20:
        a, c = fit_logistic_1d(raw[cal_raw_mask], cal_labels[cal_raw_mask])
        if a <= 0:  # never flip the ranking learned from the target
            a, c = 1.0, 0.0
    else:
        a, c = 4.0, -2.0
    return LinearHead(w=(w * a).astype(np.float32), u=float(u * a), b=float(b * a + c))
