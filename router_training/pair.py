"""Kind `pair`: a router fitted to one user's own model pair from `hybrid-router label` rows.

    hybrid-router train --kind pair --data pair_labels.jsonl --out my-router [--prior ROUTER] [--alphas 1,10,100]

The labels say, per prompt, whether the weak and the strong model answered correctly. A few hundred of them are
too few to learn prompt difficulty from scratch, so the pair head starts from a prior router (the packaged default
unless --prior names another): the prior's graph stays whole inside the new file, and the pair head reads three of
its tensors, the prompt embedding e, the cheap prompt features x (when the prior computes them) and the prior's own
logit r:

    score = sigmoid(a * (e.w + x.v + c r + b) + d)

(w, v, c, b) is a ridge regression of the pair's gain (strong score - weak score: +1 when only the strong model was
right, -1 when only the weak one was) on [e, standardised x, r]; the ridge strength on e and x is chosen by
held-out APGR, and two more candidates are the prior alone (w = v = 0, r recalibrated for the pair) and the pair
features without the prior (c = 0). Selection is a group K-fold over families (`file/category` groups): each fold
fits on the other families and is scored by APGR over its own rows, which are whole families the fit never saw,
as a new kind of traffic would be. The chosen settings are refitted on every row, and (a, d) is a 1-D logistic
calibration to P(strong needed) = P(strong scored above weak) for the pair, so the default threshold and
`strong_share` (the calibration table, quantiles on up to 400 seeded training prompts per file) mean that pair.
The file's metadata names the pair (strong_model, weak_model, models, pair), the prior (router id, sha256) and
the labels.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from router_training import data as D
from router_training.evaluate import apgr
from router_training.heads import fit_logistic_1d

KIND = "pair"
DEFAULT_ALPHAS = (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
PRIOR_ONLY = "prior-only"
NO_PRIOR = "no-prior"
WITH_PRIOR = "prior+pair"


class PairError(ValueError):
    """The rows cannot train a pair router (printed as one line, exit 2)."""


@dataclass(frozen=True)
class PairConfig:
    data: Sequence[Path]
    out: Path
    strong: str | None = None
    weak: str | None = None
    prior: Path | None = None
    alphas: Sequence[float] = DEFAULT_ALPHAS
    folds: int = 5
    seed: int = 0
    holdout: Sequence[str] | None = None
    exclude: Sequence[str] = ()
    default_share: float = 0.3
    reference_per_file: int = 400
    router_id: str | None = None
    benchmarks: str = D.BENCHMARK_GLOB


@dataclass
class PriorFeatures:
    """The prior router's graph, read for training: e [N, D], x [N, F] (F may be 0), r [N] (the prior's logit)."""

    path: Path
    raw_name: str
    base_name: str | None
    metadata: dict[str, Any]
    emb: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    base: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    raw: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass
class PairHead:
    w: np.ndarray  # [D]
    v: np.ndarray  # [F] (on the raw cheap features; standardisation folded in)
    c: float  # weight of the prior's logit
    b: float

    def raw(self, emb: np.ndarray, base: np.ndarray, prior_raw: np.ndarray) -> np.ndarray:
        extra = base @ self.v if self.v.size else 0.0
        return emb @ self.w + extra + self.c * prior_raw + self.b

    def score(self, emb: np.ndarray, base: np.ndarray, prior_raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.raw(emb, base, prior_raw)))


# ------------------------------------------------------------------------------------------ the prior graph


def _prior_graph(prior: Path):
    import onnx

    from hybrid_router.routing.artifact import resolve_router_path

    path = resolve_router_path(prior)
    model = onnx.load(str(path))
    graph = model.graph
    produced = {out for node in graph.node for out in node.output}
    if "embedding" not in produced:
        raise PairError(f"prior router {path} has no 'embedding' tensor (a random router cannot be a prior)")
    final = [n for n in graph.node if "score" in n.output]
    if len(final) != 1 or final[0].op_type != "Sigmoid":
        raise PairError(f"prior router {path}: its score is not a Sigmoid of one logit")
    return path, model, final[0].input[0], "cf_base" if "cf_base" in produced else None


def read_prior(prior: Path | None, prompts: Sequence[str]) -> PriorFeatures:
    """Runs the prior's own graph (one prompt per run, as the runtime does) with e, x and r as outputs."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    from hybrid_router.routing.artifact import read_metadata
    from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
    from hybrid_router.routing.tokens import PromptTokenizer

    path, model, raw_name, base_name = _prior_graph(prior or DEFAULT_ROUTER_DIR)
    metadata = read_metadata({p.key: p.value for p in model.metadata_props}, path)
    names = ["embedding", raw_name] + ([base_name] if base_name else [])
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    tok_meta = metadata.get("tokenizer", {})
    tokenizer = PromptTokenizer(
        path.parent / tok_meta.get("file", "tokenizer.json"),
        max_tokens=int(tok_meta.get("max_tokens", 256)),
        head_tokens=int(tok_meta.get("head_tokens", 64)),
    )
    inputs = {i.name for i in session.get_inputs()}
    id_lists, chars = tokenizer.encode(list(prompts))
    emb, raw, base = [], [], []
    for index, ids in enumerate(id_lists):
        input_ids = np.asarray([ids], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}
        if "prompt_chars" in inputs:
            feeds["prompt_chars"] = chars[index : index + 1]
        got = session.run(names, feeds)
        emb.append(np.asarray(got[0]).reshape(-1))
        raw.append(float(np.asarray(got[1]).reshape(-1)[0]))
        if base_name:
            base.append(np.asarray(got[2]).reshape(-1))
    features = PriorFeatures(path=path, raw_name=raw_name, base_name=base_name, metadata=metadata)
    features.emb = np.asarray(emb, dtype=np.float64).reshape(len(prompts), -1)
    features.raw = np.asarray(raw, dtype=np.float64)
    features.base = (
        np.asarray(base, dtype=np.float64).reshape(len(prompts), -1) if base_name else np.zeros((len(prompts), 0))
    )
    return features


# ------------------------------------------------------------------------------------------ fitting


def fit_pair_head(
    emb: np.ndarray,
    base: np.ndarray,
    prior_raw: np.ndarray,
    gain: np.ndarray,
    needed: np.ndarray,
    alpha: float,
    mode: str,
) -> PairHead:
    """Ridge of the gain on [e, standardised x, r, 1], then sigmoid calibration to P(strong needed).

    mode: WITH_PRIOR (all columns), NO_PRIOR (no r), PRIOR_ONLY (r alone: the prior's ranking, recalibrated)."""
    n, d = emb.shape
    f = base.shape[1]
    mu = base.mean(axis=0) if f else np.zeros(0)
    sd = base.std(axis=0) + 1e-6 if f else np.zeros(0)
    Z = (base - mu) / sd if f else np.zeros((n, 0))
    if mode == PRIOR_ONLY:
        w, vz, c, b = np.zeros(d), np.zeros(f), 1.0, 0.0
    else:
        use_r = mode == WITH_PRIOR
        cols = [emb, Z] + ([prior_raw[:, None]] if use_r else []) + [np.ones((n, 1))]
        X = np.hstack(cols)
        penalty = np.full(X.shape[1], float(alpha))
        if use_r:
            penalty[-2] = 1e-6  # the prior's logit: barely shrunk
        penalty[-1] = 0.0
        coef = np.linalg.solve(X.T @ X + np.diag(penalty), X.T @ gain)
        w, vz = coef[:d], coef[d : d + f]
        c = float(coef[d + f]) if use_r else 0.0
        b = float(coef[-1])
    v = vz / sd if f else np.zeros(0)
    b = b - (float(mu @ v) if f else 0.0)
    raw = emb @ w + (base @ v if f else 0.0) + c * prior_raw + b
    a, k = fit_logistic_1d(raw, needed) if 0 < needed.sum() < len(needed) else (1.0, 0.0)
    if not (a > 0 and math.isfinite(a) and math.isfinite(k)):  # never flip the fitted ranking
        a, k = 1.0, 0.0
    return PairHead(w=(w * a).astype(np.float32), v=(v * a).astype(np.float32), c=float(c * a), b=float(b * a + k))


def _folds(groups: Sequence[str], k: int, seed: int, holdout: Sequence[str] | None) -> list[np.ndarray]:
    """Held-out masks: the named groups once, or K folds of whole groups (families), seeded."""
    groups = np.asarray(groups)
    if holdout:
        names = set(holdout)
        mask = np.array([g in names or g.split("/")[0] in names for g in groups])
        return [mask] if mask.any() and not mask.all() else []
    unique = sorted(set(groups))
    if len(unique) < 2:
        return []
    order = np.random.default_rng(seed).permutation(len(unique))
    k = min(k, len(unique))
    return [np.isin(groups, [unique[i] for i in order[j::k]]) for j in range(k)]


def _safe_apgr(scores: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> float | None:
    try:
        return float(apgr(scores, strong, weak))
    except ValueError:  # strong and weak equally good on these rows: PGR undefined
        return None


def select(emb, base, prior_raw, strong, weak, groups, alphas, folds) -> tuple[dict, list[dict]]:
    """Mean held-out APGR (over folds) of every candidate; returns (chosen params, candidates)."""
    gain, needed = strong - weak, (strong > weak).astype(np.float64)
    grid = [{"mode": PRIOR_ONLY, "alpha": None}]
    grid += [{"mode": mode, "alpha": float(a)} for mode in (WITH_PRIOR, NO_PRIOR) for a in alphas]
    candidates = []
    for params in grid:
        per_fold = []
        for held in folds:
            tr = ~held
            head = fit_pair_head(
                emb[tr], base[tr], prior_raw[tr], gain[tr], needed[tr], params["alpha"] or 0.0, params["mode"]
            )
            value = _safe_apgr(head.score(emb[held], base[held], prior_raw[held]), strong[held], weak[held])
            per_fold.append(None if value is None else round(value, 4))
        values = [v for v in per_fold if v is not None]
        candidates.append(
            {"params": params, "fold_apgr": per_fold, "mean_apgr": round(float(np.mean(values)), 4) if values else None}
        )
    scored = [c for c in candidates if c["mean_apgr"] is not None]
    chosen = max(scored, key=lambda c: c["mean_apgr"])["params"] if scored else grid[0]
    return chosen, candidates


# ------------------------------------------------------------------------------------------ rows and the pair


def _declared_pairs(paths: Sequence[Path]) -> set[tuple[str, str]]:
    """(strong, weak) pairs that label rows declare in their `pair` field."""
    from router_training.scoring import iter_jsonl

    pairs = set()
    for path in paths:
        for _, obj in iter_jsonl(path):
            pair = obj.get("pair")
            if isinstance(pair, dict) and isinstance(pair.get("strong"), str) and isinstance(pair.get("weak"), str):
                pairs.add((pair["strong"], pair["weak"]))
    return pairs


def resolve_pair(paths: Sequence[Path], strong: str | None, weak: str | None) -> tuple[str, str]:
    if strong and weak:
        return strong, weak
    declared = _declared_pairs(paths)
    if strong:
        declared = {p for p in declared if p[0] == strong}
    if weak:
        declared = {p for p in declared if p[1] == weak}
    if len(declared) != 1:
        found = ", ".join(f"{s} over {w}" for s, w in sorted(declared)) or "none"
        raise PairError(f"give --strong and --weak: the rows declare {len(declared)} matching pairs ({found})")
    return next(iter(declared))


def pair_rows(rows: Sequence[D.Row], strong: str, weak: str) -> list[D.Row]:
    return [r for r in rows if strong in r.scores and weak in r.scores]


def _reference(rows: Sequence[D.Row], per_file: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    by_file: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_file[r.file].append(r.prompt)
    out: list[str] = []
    for file in sorted(by_file):
        prompts = by_file[file]
        take = min(per_file, len(prompts))
        out.extend(prompts[i] for i in sorted(rng.choice(len(prompts), size=take, replace=False)))
    return out


# ------------------------------------------------------------------------------------------ export


def pair_graph(prior: PriorFeatures, head: PairHead):
    """The prior's graph with its score renamed prior_score and the pair head's nodes ending in `score`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    _, model, _, _ = _prior_graph(prior.path)
    graph = model.graph
    for node in graph.node:
        node.output[:] = ["prior_score" if o == "score" else o for o in node.output]

    def const(name: str, value) -> Any:
        return numpy_helper.from_array(np.asarray(value), name)

    nodes = [
        helper.make_node("MatMul", ["embedding", "pair_w"], ["pair_ew2"]),
        helper.make_node("Squeeze", ["pair_ew2", "pair_axis1"], ["pair_ew"]),
        helper.make_node("Mul", [prior.raw_name, "pair_c"], ["pair_cr"]),
        helper.make_node("Add", ["pair_ew", "pair_cr"], ["pair_sum0"]),
    ]
    inits = [
        const("pair_w", head.w.astype(np.float32)[:, None]),
        const("pair_axis1", np.array([1], dtype=np.int64)),
        const("pair_c", np.array(head.c, dtype=np.float32)),
        const("pair_b", np.array(head.b, dtype=np.float32)),
    ]
    last = "pair_sum0"
    if prior.base_name and head.v.size:
        nodes += [
            helper.make_node("MatMul", [prior.base_name, "pair_v"], ["pair_xv2"]),
            helper.make_node("Squeeze", ["pair_xv2", "pair_axis1"], ["pair_xv"]),
            helper.make_node("Add", [last, "pair_xv"], ["pair_sum1"]),
        ]
        inits.append(const("pair_v", head.v.astype(np.float32)[:, None]))
        last = "pair_sum1"
    nodes += [
        helper.make_node("Add", [last, "pair_b"], ["pair_raw"]),
        helper.make_node("Sigmoid", ["pair_raw"], ["score"]),
    ]
    graph.node.extend(nodes)
    graph.initializer.extend(inits)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"]))
    graph.name = "hybrid_router_pair"
    onnx.checker.check_model(model)
    return model


@dataclass
class PairRows:
    """The label rows that train a pair router: those that score both models of the pair."""

    paths: list[Path]
    rows_read: int  # rows left after --exclude, decontaminated and deduplicated
    exclude: set[str]
    strong_model: str
    weak_model: str
    used: list[D.Row]
    strong: np.ndarray  # each used row's unit score for the strong model
    weak: np.ndarray

    @property
    def groups(self) -> list[str]:
        return [r.group for r in self.used]


def train_pair_router(config: PairConfig) -> dict[str, Any]:
    """Trains, exports and checks a pair router; returns the training report (also written beside the file)."""
    started = time.time()
    data = _pair_training_rows(config)
    reference = _reference(data.used, config.reference_per_file, config.seed)
    prior = read_prior(config.prior, [r.prompt for r in data.used] + reference)
    n = len(data.used)
    emb, base, prior_raw = prior.emb[:n], prior.base[:n], prior.raw[:n]
    folds = _folds(data.groups, config.folds, config.seed, config.holdout)
    chosen, candidates = select(emb, base, prior_raw, data.strong, data.weak, data.groups, config.alphas, folds)
    needed = (data.strong > data.weak).astype(np.float64)
    head = fit_pair_head(emb, base, prior_raw, data.strong - data.weak, needed, chosen["alpha"] or 0.0, chosen["mode"])
    reference_scores = head.score(prior.emb[n:], prior.base[n:], prior.raw[n:])
    metadata = _pair_metadata(config, data, prior, head, chosen, reference_scores)
    diff = _save_and_check(config.out, prior, head, metadata, reference, reference_scores)
    selection = {
        "folds": [sorted(set(np.asarray(data.groups)[f])) for f in folds],
        "candidates": candidates,
        "chosen": chosen,
    }
    report = _pair_report(data, selection, metadata, diff)
    report["router_onnx_mb"] = round((config.out / "router.onnx").stat().st_size / 1e6, 2)
    report["seconds"] = round(time.time() - started, 1)
    (config.out / "training_report.json").write_text(json.dumps(report, indent=2))
    return report


def _pair_training_rows(config: PairConfig) -> PairRows:
    paths = [Path(p) for p in config.data]
    for path in paths:
        if not path.is_file():
            raise PairError(f"training file not found: {path}")
    rows = D.read_rows(paths)
    exclude = set(config.exclude)
    rows = [r for r in rows if r.group not in exclude and r.file not in exclude]
    D.check_decontaminated(rows, config.benchmarks)
    rows = D.deduplicate(rows)
    strong_model, weak_model = resolve_pair(paths, config.strong, config.weak)
    if strong_model == weak_model:
        raise PairError(f"strong and weak model are the same ({strong_model!r})")
    used = pair_rows(rows, strong_model, weak_model)
    if len(used) < 20:
        raise PairError(f"only {len(used)} rows label both {strong_model} and {weak_model}; need at least 20")
    strong = np.array([D.unit_scores(r)[strong_model] for r in used])
    weak = np.array([D.unit_scores(r)[weak_model] for r in used])
    if not (strong > weak).any():
        raise PairError(f"{strong_model} never scored above {weak_model}: nothing for a router to find")
    return PairRows(paths, len(rows), exclude, strong_model, weak_model, used, strong, weak)


def _pair_metadata(
    config: PairConfig,
    data: PairRows,
    prior: PriorFeatures,
    head: PairHead,
    chosen: dict[str, Any],
    reference_scores: np.ndarray,
) -> dict[str, Any]:
    """The router file's metadata: the pair, the prior, how the head was chosen, and its calibration."""
    from hybrid_router.routing.calibration import score_quantiles, threshold_for_share
    from router_training.embedding_export import file_sha256

    quantiles = score_quantiles(reference_scores)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    strong_model, weak_model = data.strong_model, data.weak_model
    return {
        "kind": KIND,
        "version": "1",
        "router_id": config.router_id or f"pair-{weak_model}-vs-{strong_model}-{created[:10]}",
        "created_at": created,
        "embedding": prior.metadata.get("embedding"),
        "tokenizer": prior.metadata.get("tokenizer"),
        "training_data": [{"file": p.name, "sha256": file_sha256(p)} for p in data.paths],
        "protocol": {
            "target": "gain = strong score - weak score (ridge), calibrated to P(strong scored above weak)",
            "selection": chosen,
            "selection_folds": "group K-fold over families"
            if not config.holdout
            else f"held out: {sorted(config.holdout)}",
            "seed": config.seed,
            "excluded_groups": sorted(data.exclude),
            "dedup": "normalised prompt",
            "decontamination": "refuse normalised-equal benchmark prompts",
        },
        "prior": {
            "router_id": prior.metadata.get("router_id"),
            "kind": prior.metadata.get("kind"),
            "sha256": file_sha256(prior.path),
            "logit_weight": head.c,
        },
        "pair": {"strong": strong_model, "weak": weak_model},
        "models": [strong_model, weak_model],
        "strong_model": strong_model,
        "weak_model": weak_model,
        "default_threshold": threshold_for_share(quantiles, config.default_share),
        "default_strong_share": config.default_share,
        "calibration": {
            "quantiles": quantiles,
            "n": len(reference_scores),
            "reference": f"up to {config.reference_per_file} seeded prompts per training file",
        },
    }


def _save_and_check(
    out: Path,
    prior: PriorFeatures,
    head: PairHead,
    metadata: dict[str, Any],
    reference: list[str],
    reference_scores: np.ndarray,
) -> float:
    """Writes router.onnx and the prior's tokenizer, loads them as the runtime does and returns the largest
    difference from the head's scores on the first 50 reference prompts (RuntimeError when over 2e-3)."""
    from hybrid_router.routing import Router
    from router_training.router_graph import save_router

    out.mkdir(parents=True, exist_ok=True)
    save_router(pair_graph(prior, head), metadata, out / "router.onnx")
    tokenizer = prior.path.parent / (prior.metadata.get("tokenizer") or {}).get("file", "tokenizer.json")
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    check = Router(out / "router.onnx")
    diff = float(np.abs(check.score(reference[:50]) - reference_scores[:50]).max()) if reference else 0.0
    if diff > 2e-3:
        raise RuntimeError(f"exported pair router disagrees with the fitted head: {diff}")
    return diff


def _pair_report(data: PairRows, selection: dict[str, Any], metadata: dict[str, Any], diff: float) -> dict[str, Any]:
    """The training report, but for the file's size and the time taken."""
    strong, weak = data.strong, data.weak
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, g in enumerate(data.groups):
        by_family[g].append(i)
    n = len(data.used)
    return {
        "kind": KIND,
        "router_id": metadata["router_id"],
        "pair": {"strong": data.strong_model, "weak": data.weak_model},
        "files": [str(p) for p in data.paths],
        "rows_read": data.rows_read,
        "rows_pair_used": n,
        "rows_other_ignored": data.rows_read - n,
        "strong_mean": round(float(strong.mean()), 4),
        "weak_mean": round(float(weak.mean()), 4),
        "strong_needed_share": round(float((strong > weak).mean()), 4),
        "families": {
            g: {"n": len(ix), "strong": round(float(strong[ix].mean()), 3), "weak": round(float(weak[ix].mean()), 3)}
            for g, ix in sorted(by_family.items())
        },
        "selection": selection,
        "prior": metadata["prior"],
        "default_threshold": metadata["default_threshold"],
        "export_check_max_abs_diff": diff,
    }
