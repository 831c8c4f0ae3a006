"""Cheap prompt features for the clf head (`--features cheap|task-cheap`), computed the same way in numpy and in ONNX.

From the token ids (the runtime's truncated [CLS] ... [SEP] sequence) and `prompt_chars` only:

    x = [len, digit share, maths-symbol share, code-token share, non-ASCII share, log(1 + '?' tokens),
         log(1 + option markers)]

len is the existing length feature log(1 + chars) / 10; a share is (tokens with the indicator) / (tokens); an
option marker is a single letter a-j followed by '.' or ')' (the uncased tokenizer sees "A." as "a", ".").
Per-token indicators live in a small [V, 5] lookup table gathered and pooled like the static encoder's table.

`task-cheap` adds a soft 3-way task gate g = softmax(e G + c) (chat / maths / other task, a multinomial logistic
fitted on the training prompts' files and groups) and feeds the ridge the interactions g_k * x_j plus g, so the
length/digit/... weights can differ per task. The gate is fixed before the ridge; the ridge sees standardised
extra columns (the standardisation is folded into the exported weights).

`--maths-expert` (with task-cheap) re-orders maths prompts among themselves by a second ridge, fitted on worked
answers (gsm8k_train: log(1 + calculator steps)) over [e, x] and standardised: raw' = (1 - g_maths) raw +
g_maths (m + s z), with m and s the maths-gate-weighted mean and spread of raw over the training rows. Maths prompts keep their
level against other prompts; within maths, the step-count expert decides the order.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from router_training.heads import fit_logistic_1d

N_TOKEN = 5  # digit, maths, code, non-ASCII, question mark
SHARE_COLS = 4  # the first four are shares, the question mark a log count
N_BASE = 1 + N_TOKEN + 1  # len, token features, option markers
TASKS = ("chat", "maths", "task")
MATHS_SYMBOLS = set("=+*/^$%<>") | {"\\", "sqrt", "frac"}
CODE_TOKENS = {"{", "}", ";", "def", "return", "import", "`", "#", "_", "print", "int", "self", "class"}


def token_tables(vocab: dict[str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """([V, 5] indicators, [V] option letter, [V] option punctuation) from a WordPiece vocabulary."""
    size = max(vocab.values()) + 1
    table = np.zeros((size, N_TOKEN), dtype=np.float32)
    letter = np.zeros(size, dtype=np.float32)
    punct = np.zeros(size, dtype=np.float32)
    for token, idx in vocab.items():
        piece = token[2:] if token.startswith("##") else token
        if token.startswith("[") and token.endswith("]"):
            continue
        table[idx, 0] = float(piece.isdigit())
        table[idx, 1] = float(piece in MATHS_SYMBOLS)
        table[idx, 2] = float(piece in CODE_TOKENS)
        table[idx, 3] = float(any(ord(ch) > 127 for ch in piece))
        table[idx, 4] = float(piece == "?")
        letter[idx] = float(token in set(string.ascii_lowercase[:10]))
        punct[idx] = float(token in {".", ")"})
    return table, letter, punct


def base_features(id_lists: Sequence[Sequence[int]], chars: np.ndarray, tables) -> np.ndarray:
    """[N, 7] cheap features, exactly as the graph computes them (float32)."""
    table, letter, punct = tables
    out = np.zeros((len(id_lists), N_BASE), dtype=np.float32)
    out[:, 0] = (np.log1p(np.asarray(chars, dtype=np.float64)) / 10.0).astype(np.float32)
    for i, ids in enumerate(id_lists):
        ids = np.asarray(ids, dtype=np.int64)
        counts = table[ids].sum(axis=0)
        out[i, 1 : 1 + SHARE_COLS] = counts[:SHARE_COLS] / np.float32(len(ids))
        out[i, 1 + SHARE_COLS : 1 + N_TOKEN] = np.log1p(counts[SHARE_COLS:])
        out[i, -1] = np.log1p((letter[ids[:-1]] * punct[ids[1:]]).sum())
    return out


def task_of(file: str, group: str) -> int:
    if file in ("arena_bench_v1", "alpaca_eval_prefs"):
        return 0
    if "gsm8k" in group or group.endswith(("/math", "/math_l5")):
        return 1
    return 2


def fit_gate(emb: np.ndarray, labels: np.ndarray, l2: float = 1e-3, iters: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic on the embedding (full-batch L-BFGS). Returns (W [D, 3], b [3])."""
    import torch

    x = torch.tensor(emb, dtype=torch.float64)
    y = torch.tensor(labels, dtype=torch.long)
    counts = np.bincount(labels, minlength=len(TASKS)).astype(np.float64)
    weight = torch.tensor(np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / len(TASKS), 0.0))
    W = torch.zeros((emb.shape[1], len(TASKS)), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(len(TASKS), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ W + b, y, weight=weight) + l2 * (W**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    b_np = b.detach().numpy().copy()
    b_np[counts == 0] = -30.0  # a task with no prompts is never chosen
    return W.detach().numpy().astype(np.float32), b_np.astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class MathsExpert:
    """z = e.w + x.v + c: predicted calculator steps, standardised; blended into maths prompts' raw score."""

    w: np.ndarray  # [D]
    v: np.ndarray  # [N_BASE]
    c: float
    level: float  # mean raw score of the maths training rows
    spread: float  # their standard deviation

    def z(self, emb: np.ndarray, base: np.ndarray) -> np.ndarray:
        return emb @ self.w + base @ self.v + self.c


@dataclass
class FeatureHead:
    """score = sigmoid(e.w + extra(e, x).v + b); extra = x ("cheap") or [g (x) x, g] ("task-cheap")."""

    w: np.ndarray  # [D]
    v: np.ndarray  # [F]
    b: float
    mode: str
    gate_W: np.ndarray | None = None  # [D, 3]
    gate_b: np.ndarray | None = None  # [3]
    maths: MathsExpert | None = None

    def gate(self, emb: np.ndarray) -> np.ndarray:
        return _softmax(emb.astype(np.float32) @ self.gate_W + self.gate_b).astype(np.float32)

    def extra(self, emb: np.ndarray, base: np.ndarray) -> np.ndarray:
        return extra_features(self.mode, base, self.gate(emb) if self.mode == "task-cheap" else None)

    def raw(self, emb: np.ndarray, base: np.ndarray) -> np.ndarray:
        raw = emb @ self.w + self.extra(emb, base) @ self.v + self.b
        if self.maths is None:
            return raw
        g = self.gate(emb)[:, TASKS.index("maths")]
        return raw + g * (self.maths.level + self.maths.spread * self.maths.z(emb, base) - raw)

    def score(self, emb: np.ndarray, base: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(emb, base)))


def extra_features(mode: str, base: np.ndarray, gate: np.ndarray | None) -> np.ndarray:
    if mode == "cheap":
        return base
    inter = (gate[:, :, None] * base[:, None, :]).reshape(len(base), -1)
    return np.hstack([inter, gate]).astype(np.float32)


def train_feature_clf(
    emb: np.ndarray,
    base: np.ndarray,
    target: np.ndarray,
    cal_mask: np.ndarray,
    cal_labels: np.ndarray,
    alpha: float,
    mode: str,
    gate: tuple[np.ndarray, np.ndarray] | None,
) -> FeatureHead:
    """Ridge of the target on [e, standardised extra features, 1], then the clf's 1-D logistic calibration."""
    head = FeatureHead(
        w=np.zeros(emb.shape[1], np.float32),
        v=np.zeros(1, np.float32),
        b=0.0,
        mode=mode,
        gate_W=None if gate is None else gate[0],
        gate_b=None if gate is None else gate[1],
    )
    extra = head.extra(emb, base).astype(np.float64)
    ok = np.isfinite(target)
    mu = extra[ok].mean(axis=0)
    sd = extra[ok].std(axis=0) + 1e-6
    Z = (extra - mu) / sd
    n = emb.shape[0]
    X = np.hstack([emb.astype(np.float64), Z, np.ones((n, 1))])
    penalty = alpha * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0
    Xo = X[ok]
    coef = np.linalg.solve(Xo.T @ Xo + penalty, Xo.T @ np.asarray(target[ok], dtype=np.float64))
    d = emb.shape[1]
    w, vz, b = coef[:d], coef[d:-1], coef[-1]
    v = vz / sd
    b = b - mu @ v
    raw = emb @ w + extra @ v + b
    a, c = 4.0, -2.0
    if cal_mask.sum() >= 20:
        a, c = fit_logistic_1d(raw[cal_mask], cal_labels[cal_mask])
        if a <= 0:
            a, c = 1.0, 0.0
    head.w = (w * a).astype(np.float32)
    head.v = (v * a).astype(np.float32)
    head.b = float(b * a + c)
    return head


def fit_maths_expert(
    head: FeatureHead,
    answer_emb: np.ndarray,
    answer_base: np.ndarray,
    steps: np.ndarray,
    emb: np.ndarray,
    base: np.ndarray,
    alpha: float = 10.0,
) -> MathsExpert:
    """Ridge of log(1 + steps) on [e, x] over worked answers, standardised on them; level and spread = the mean
    and standard deviation of the head's raw scores over the training rows (emb, base), weighted by the maths gate."""
    X = np.hstack([answer_emb, answer_base]).astype(np.float64)
    mu, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mu) / sd
    beta = np.linalg.solve(Z.T @ Z + alpha * np.eye(Z.shape[1]), Z.T @ (steps - steps.mean()))
    coef = beta / sd
    pred = X @ coef
    scale = pred.std() + 1e-9
    coef = coef / scale
    d = answer_emb.shape[1]
    raw = head.raw(emb, base)
    g = head.gate(emb)[:, TASKS.index("maths")].astype(np.float64)
    level = float(np.average(raw, weights=g))
    spread = float(np.sqrt(np.average((raw - level) ** 2, weights=g)))
    return MathsExpert(
        w=coef[:d].astype(np.float32),
        v=coef[d:].astype(np.float32),
        c=float(-pred.mean() / scale),
        level=level,
        spread=spread,
    )


def _c(name: str, value) -> object:
    return numpy_helper.from_array(np.asarray(value), name)


def feature_head_nodes(head: FeatureHead, tables) -> tuple[list, list, list]:
    """ONNX nodes: input_ids, attention_mask, prompt_chars, embedding -> score (same maths as FeatureHead)."""
    task_gate = head.mode == "task-cheap"
    parts = [_base_feature_nodes(tables)]
    if task_gate:
        parts.append(_task_gate_nodes(head))
    parts.append(_ridge_nodes(head, extra="cf_extra" if task_gate else "cf_base"))
    if head.maths is not None:
        parts.append(_maths_expert_nodes(head.maths))
    nodes = [node for part_nodes, _ in parts for node in part_nodes]
    inits = [init for _, part_inits in parts for init in part_inits]
    raw = "cf_raw" if head.maths is None else "mx_raw"
    nodes.append(helper.make_node("Sigmoid", [raw], ["score"]))
    return nodes, inits, [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])]


def _base_feature_nodes(tables) -> tuple[list, list]:
    """input_ids, attention_mask, prompt_chars -> cf_base [N, 7], as `base_features` computes it."""
    table, letter, punct = tables
    select_share = np.zeros((N_TOKEN, N_TOKEN), dtype=np.float32)
    select_log = np.zeros((N_TOKEN, N_TOKEN), dtype=np.float32)
    for k in range(N_TOKEN):
        (select_share if k < SHARE_COLS else select_log)[k, k] = 1.0
    nodes = [
        helper.make_node("Add", ["prompt_chars", "cf_one"], ["cf_chars1"]),
        helper.make_node("Log", ["cf_chars1"], ["cf_logchars"]),
        helper.make_node("Mul", ["cf_logchars", "cf_tenth"], ["cf_len"]),
        helper.make_node("Unsqueeze", ["cf_len", "cf_axis1"], ["cf_len_col"]),
        helper.make_node("Cast", ["attention_mask"], ["cf_mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["cf_mask", "cf_axis2"], ["cf_mask3"]),
        helper.make_node("Gather", ["cf_table", "input_ids"], ["cf_tok"]),
        helper.make_node("Mul", ["cf_tok", "cf_mask3"], ["cf_tok_m"]),
        helper.make_node("ReduceSum", ["cf_tok_m", "cf_axis1"], ["cf_counts"], keepdims=0),
        helper.make_node("ReduceSum", ["cf_mask", "cf_axis1"], ["cf_ntok"], keepdims=1),
        helper.make_node("Div", ["cf_counts", "cf_ntok"], ["cf_shares"]),
        helper.make_node("Add", ["cf_counts", "cf_one"], ["cf_counts1"]),
        helper.make_node("Log", ["cf_counts1"], ["cf_logcounts"]),
        helper.make_node("MatMul", ["cf_shares", "cf_sel_share"], ["cf_tok_a"]),
        helper.make_node("MatMul", ["cf_logcounts", "cf_sel_log"], ["cf_tok_b"]),
        helper.make_node("Add", ["cf_tok_a", "cf_tok_b"], ["cf_tokfeat"]),
        helper.make_node("Gather", ["cf_letter", "input_ids"], ["cf_let"]),
        helper.make_node("Gather", ["cf_punct", "input_ids"], ["cf_pun"]),
        helper.make_node("Mul", ["cf_let", "cf_mask"], ["cf_let_m"]),
        helper.make_node("Mul", ["cf_pun", "cf_mask"], ["cf_pun_m"]),
        helper.make_node("Slice", ["cf_let_m", "cf_zero", "cf_minus1", "cf_axis1"], ["cf_let_s"]),
        helper.make_node("Slice", ["cf_pun_m", "cf_one_i", "cf_big", "cf_axis1"], ["cf_pun_s"]),
        helper.make_node("Mul", ["cf_let_s", "cf_pun_s"], ["cf_opt_tok"]),
        helper.make_node("ReduceSum", ["cf_opt_tok", "cf_axis1"], ["cf_opt"], keepdims=1),
        helper.make_node("Add", ["cf_opt", "cf_one"], ["cf_opt1"]),
        helper.make_node("Log", ["cf_opt1"], ["cf_logopt"]),
        helper.make_node("Concat", ["cf_len_col", "cf_tokfeat", "cf_logopt"], ["cf_base"], axis=1),
    ]
    inits = [
        _c("cf_one", np.array(1.0, dtype=np.float32)),
        _c("cf_tenth", np.array(0.1, dtype=np.float32)),
        _c("cf_axis1", np.array([1], dtype=np.int64)),
        _c("cf_axis2", np.array([2], dtype=np.int64)),
        _c("cf_table", table),
        _c("cf_letter", letter),
        _c("cf_punct", punct),
        _c("cf_sel_share", select_share),
        _c("cf_sel_log", select_log),
        _c("cf_zero", np.array([0], dtype=np.int64)),
        _c("cf_minus1", np.array([-1], dtype=np.int64)),
        _c("cf_one_i", np.array([1], dtype=np.int64)),
        _c("cf_big", np.array([1 << 40], dtype=np.int64)),
    ]
    return nodes, inits


def _task_gate_nodes(head: FeatureHead) -> tuple[list, list]:
    """embedding, cf_base -> cf_gate (softmax of the task gate) and cf_extra = [gate (x) base, gate]."""
    nodes = [
        helper.make_node("MatMul", ["embedding", "cf_gate_W"], ["cf_gate_z0"]),
        helper.make_node("Add", ["cf_gate_z0", "cf_gate_b"], ["cf_gate_z"]),
        helper.make_node("Softmax", ["cf_gate_z"], ["cf_gate"], axis=1),
        helper.make_node("Unsqueeze", ["cf_gate", "cf_axis2"], ["cf_gate3"]),
        helper.make_node("Unsqueeze", ["cf_base", "cf_axis1"], ["cf_base3"]),
        helper.make_node("Mul", ["cf_gate3", "cf_base3"], ["cf_inter3"]),
        helper.make_node("Reshape", ["cf_inter3", "cf_inter_shape"], ["cf_inter"]),
        helper.make_node("Concat", ["cf_inter", "cf_gate"], ["cf_extra"], axis=1),
    ]
    inits = [
        _c("cf_gate_W", head.gate_W.astype(np.float32)),
        _c("cf_gate_b", head.gate_b.astype(np.float32)[None, :]),
        _c("cf_inter_shape", np.array([-1, len(TASKS) * N_BASE], dtype=np.int64)),
    ]
    return nodes, inits


def _ridge_nodes(head: FeatureHead, extra: str) -> tuple[list, list]:
    """embedding, the extra features -> cf_raw = e.w + extra.v + b."""
    nodes = [
        helper.make_node("MatMul", ["embedding", "cf_w"], ["cf_ew2"]),
        helper.make_node("MatMul", [extra, "cf_v"], ["cf_xv2"]),
        helper.make_node("Add", ["cf_ew2", "cf_xv2"], ["cf_raw2"]),
        helper.make_node("Squeeze", ["cf_raw2", "cf_axis1"], ["cf_raw0"]),
        helper.make_node("Add", ["cf_raw0", "cf_b"], ["cf_raw"]),
    ]
    inits = [
        _c("cf_w", head.w.astype(np.float32)[:, None]),
        _c("cf_v", head.v.astype(np.float32)[:, None]),
        _c("cf_b", np.array(head.b, dtype=np.float32)),
    ]
    return nodes, inits


def _maths_expert_nodes(m: MathsExpert) -> tuple[list, list]:
    """cf_raw -> mx_raw: moved towards the maths expert's level + spread * z by the maths gate."""
    nodes = [
        helper.make_node("MatMul", ["embedding", "mx_w"], ["mx_ew"]),
        helper.make_node("MatMul", ["cf_base", "mx_v"], ["mx_xv"]),
        helper.make_node("Add", ["mx_ew", "mx_xv"], ["mx_z2"]),
        helper.make_node("Squeeze", ["mx_z2", "cf_axis1"], ["mx_z"]),
        helper.make_node("Mul", ["mx_z", "mx_spread"], ["mx_zs"]),
        helper.make_node("Add", ["mx_zs", "mx_offset"], ["mx_target"]),
        helper.make_node("Gather", ["cf_gate", "mx_task"], ["mx_g"], axis=1),
        helper.make_node("Sub", ["mx_target", "cf_raw"], ["mx_delta"]),
        helper.make_node("Mul", ["mx_g", "mx_delta"], ["mx_step"]),
        helper.make_node("Add", ["cf_raw", "mx_step"], ["mx_raw"]),
    ]
    inits = [
        _c("mx_w", m.w.astype(np.float32)[:, None]),
        _c("mx_v", m.v.astype(np.float32)[:, None]),
        _c("mx_spread", np.array(m.spread, dtype=np.float32)),
        _c("mx_offset", np.array(m.level + m.spread * m.c, dtype=np.float32)),
        _c("mx_task", np.array(TASKS.index("maths"), dtype=np.int64)),
    ]
    return nodes, inits
