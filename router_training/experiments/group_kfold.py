"""Group K-fold selection: every labelled training group is scored by routers trained without it.

    OMP_NUM_THREADS=1 nice .venv/bin/python -m router_training.experiments.group_kfold \
        [--variant NAME ...] [--folds 5] [--out runs/group_kfold] [--markdown FILE]

The shipped routers are selected on 8 fixed held-out groups (router_training/README.md), a few thousand rows. This
experiment asks whether a less noisy protocol would rank the variants differently. Protocol:

- Groups: every `file/dataset` or `file/category` group of the shipped training files that `selection.group_pairs`
  can score (two models labelling 80 % of it, 10+ rows, a mean gap of 0.02 or more), sorted by size and assigned
  round robin to the folds.
- Per variant and fold, `train_router` trains the variant (a single hyper-parameter setting, so nothing is
  selected inside) with `holdout` = the fold's groups; the training report's validation gives each held-out
  group's APGR on the requested pair where the group labels it (GPT-4-1106 vs Mixtral), else on its best model
  against its median model, and the difficulty APGR (rows labelled by 3+ models). Rows outside every group
  (gsm8k_train's worked answers, the easy rows) are always on the training side.
- Reported: the mean over all groups, the mean over the four task kinds and each kind (chat, code, knowledge,
  maths), the mean difficulty APGR, and a random router (uniform scores, 20 seeds). No benchmark is read.

Each fold trains a full router, so a variant costs about five trainings (a minute or two each for clf with the
static encoder; mix longer). The routers go to a temporary folder; --out keeps the per-fold training reports
and results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from router_training import data as D
from router_training.evaluate import apgr
from router_training.experiments.variants import EASY_PROMPTS, TRAIN_FILES, ZEROEVAL_FILES
from router_training.selection import group_pairs
from router_training.train import DEFAULT_STRONG, DEFAULT_WEAK, TrainConfig, train_router

KINDS = ("chat", "code", "knowledge", "maths")


@dataclass(frozen=True)
class Variant:
    description: str
    options: Mapping[str, Any]  # TrainConfig fields beyond data, holdout, out and router_id
    easy_rows: bool = False  # add router_training/easy_prompts.jsonl (always training rows), anchored
    extra_files: Sequence[str] = ()  # more train/ files (stems), always training rows: the folds stay the same


CLF = {"kind": "clf", "target": "difficulty_centered", "encoder": "static"}
TASK_CHEAP = {**CLF, "features": "task-cheap"}
VARIANTS: dict[str, Variant] = {
    "clf": Variant("clf, alpha 3 (plain)", {**CLF, "alphas": (3,)}),
    "task-cheap": Variant("clf + task-gated cheap features, alpha 3", {**TASK_CHEAP, "alphas": (3,)}),
    "cheap": Variant("clf + cheap features, alpha 3", {**CLF, "features": "cheap", "alphas": (3,)}),
    "clf-a1": Variant("clf, alpha 1", {**CLF, "alphas": (1,)}),
    "clf-a10": Variant("clf, alpha 10", {**CLF, "alphas": (10,)}),
    "clf-a30": Variant("clf, alpha 30", {**CLF, "alphas": (30,)}),
    "clf-uncentred": Variant("clf, uncentred difficulty", {**CLF, "target": "difficulty", "alphas": (3,)}),
    "clf-no-length": Variant("clf, no length feature", {**CLF, "use_length": False, "alphas": (3,)}),
    "strong-beats-weak": Variant('clf on "strong beats weak"', {**CLF, "target": "strong_beats_weak", "alphas": (3,)}),
    "task-cheap-a1": Variant("clf + task-gated cheap features, alpha 1", {**TASK_CHEAP, "alphas": (1,)}),
    "task-cheap-a10": Variant("clf + task-gated cheap features, alpha 10", {**TASK_CHEAP, "alphas": (10,)}),
    "maths-expert": Variant(
        "clf + task-gated cheap features + maths expert, alpha 3", {**TASK_CHEAP, "maths_expert": True, "alphas": (3,)}
    ),
    "task-cheap-a0.3": Variant("clf + task-gated cheap features, alpha 0.3", {**TASK_CHEAP, "alphas": (0.3,)}),
    "task-cheap-a0.3-easy": Variant(
        "clf + task-gated cheap features, alpha 0.3, + easy rows (shipped default)",
        {**TASK_CHEAP, "alphas": (0.3,), "anchored_files": ("easy_prompts",)},
        easy_rows=True,
    ),
    "task-cheap-a0.3-easy-zeroeval": Variant(
        "the same + zeroeval_crux + zeroeval_math_l5 (always training rows)",
        {**TASK_CHEAP, "alphas": (0.3,), "anchored_files": ("easy_prompts",)},
        easy_rows=True,
        extra_files=ZEROEVAL_FILES,
    ),
    "mix": Variant(
        "mix (chat/task experts), alpha 10 / chat 1000",
        {"kind": "mix", "encoder": "static", "alphas": (10,), "chat_alphas": (1000,)},
    ),
}


def kind_of(group: str) -> str:
    if group.startswith(("arena", "alpaca")):
        return "chat"
    if "gsm8k" in group or group.endswith(("math", "math_l5")):
        return "maths"
    if "mbpp" in group or "humaneval" in group or group.endswith("/crux"):
        return "code"
    return "knowledge"


def scored_groups(train_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{group: (row indices, strong labels, weak labels)} over the deduplicated rows labelled by 2+ models, largest
    group first: the groups the folds are made of, as train_router's validation scores them."""
    rows = D.deduplicate(D.read_rows([train_dir / f"{stem}.jsonl" for stem in TRAIN_FILES]))
    labelled = [r for r in rows if len(r.scores) >= 2]
    groups = group_pairs(labelled, np.ones(len(labelled), dtype=bool), DEFAULT_STRONG, DEFAULT_WEAK)
    ordered = sorted(groups, key=lambda g: -len(groups[g][0]))
    return {g: (groups[g][0], groups[g][3], groups[g][4]) for g in ordered}


def assign_folds(groups: Sequence[str], folds: int) -> dict[str, int]:
    """Round robin over the groups in the given order (largest first)."""
    return {group: i % folds for i, group in enumerate(groups)}


def variant_config(name: str, train_dir: Path, holdout: Sequence[str], out: Path) -> TrainConfig:
    variant = VARIANTS[name]
    stems = list(TRAIN_FILES) + list(variant.extra_files)
    data = [train_dir / f"{stem}.jsonl" for stem in stems] + ([EASY_PROMPTS] if variant.easy_rows else [])
    return TrainConfig(
        data=data,
        holdout=tuple(holdout),
        out=out,
        encoder_from=DEFAULT_ROUTER_DIR / "router.onnx",
        router_id=f"group-kfold-{name}",
        **variant.options,
    )


def summarise(pair_apgr: Mapping[str, float], difficulty_apgr: Mapping[str, float]) -> dict[str, Any]:
    by_kind: dict[str, list[float]] = {}
    for group, value in pair_apgr.items():
        by_kind.setdefault(kind_of(group), []).append(value)
    kinds = {kind: float(np.mean(values)) for kind, values in sorted(by_kind.items())}
    return {
        "all": float(np.mean(list(pair_apgr.values()))),
        "kinds": float(np.mean(list(kinds.values()))),
        "by_kind": kinds,
        "groups": dict(pair_apgr),
        "difficulty": float(np.mean(list(difficulty_apgr.values()))) if difficulty_apgr else None,
        "difficulty_groups": dict(difficulty_apgr),
    }


def run_variant(
    name: str, train_dir: Path, fold_of: Mapping[str, int], work: Path, reports: Path | None
) -> dict[str, Any]:
    pair_apgr: dict[str, float] = {}
    difficulty_apgr: dict[str, float] = {}
    for fold in sorted(set(fold_of.values())):
        held = [g for g, f in fold_of.items() if f == fold]
        started = time.time()
        report = train_router(variant_config(name, train_dir, held, work / name / f"fold{fold}")).report
        (candidate,) = report["selection"]["candidates"]
        validation = candidate["validation"]
        missing = set(held) - set(validation["groups"])
        if missing:
            raise RuntimeError(f"fold {fold} of {name}: groups not validated: {sorted(missing)}")
        pair_apgr.update({g: validation["groups"][g]["apgr"] for g in held})
        difficulty_apgr.update((validation.get("difficulty_apgr") or {}).get("groups", {}))
        print(f"  {name} fold {fold}: {len(held)} groups, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        if reports is not None:
            reports.mkdir(parents=True, exist_ok=True)
            (reports / f"{name}_fold{fold}.json").write_text(json.dumps(report, indent=1))
    return summarise(pair_apgr, difficulty_apgr)


def random_baseline(
    groups: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]], seeds: int = 20
) -> dict[str, float]:
    """Mean over groups of a uniform random router's APGR, per seed: mean and standard deviation over seeds."""
    n = 1 + max(int(idx.max()) for idx, _, _ in groups.values())
    means = []
    for seed in range(seeds):
        scores = np.random.default_rng(seed).random(n)
        means.append(np.mean([apgr(scores[idx], s, w) for idx, s, w in groups.values()]))
    return {"mean": float(np.mean(means)), "sd": float(np.std(means)), "seeds": seeds}


def markdown(results: Mapping[str, Mapping[str, Any]], random: Mapping[str, float]) -> str:
    lines = [
        "| variant | all groups | kinds | " + " | ".join(KINDS) + " | difficulty APGR |",
        "|---|---:|---:|" + "---:|" * len(KINDS) + "---:|",
    ]
    for name, r in results.items():
        kinds = " | ".join(f"{r['by_kind'].get(k, float('nan')):.3f}" for k in KINDS)
        difficulty = f"{r['difficulty']:.3f}" if r["difficulty"] is not None else "–"
        lines.append(f"| {VARIANTS[name].description} | {r['all']:.3f} | {r['kinds']:.3f} | {kinds} | {difficulty} |")
    lines.append(
        f"| random, {random['seeds']} seeds | {random['mean']:.3f} ± {random['sd']:.3f} | | |" + " |" * len(KINDS)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_training.experiments.group_kfold", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--variant", action="append", choices=list(VARIANTS), help="variants to score (repeatable; default: all)"
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path("runs") / "group_kfold", help="per-fold training reports and results.json"
    )
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    train_dir = D.shared_data_dir() / "train"
    groups = scored_groups(train_dir)
    fold_of = assign_folds(list(groups), args.folds)
    print(
        f"{len(groups)} groups: " + ", ".join(f"{g} ({len(groups[g][0])}, fold {fold_of[g]})" for g in groups),
        file=sys.stderr,
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="group-kfold-") as work:
        for name in args.variant or list(VARIANTS):
            results[name] = run_variant(name, train_dir, fold_of, Path(work), args.out / "reports")
            r = results[name]
            print(
                f"{name:24s} all={r['all']:.4f} kinds={r['kinds']:.4f} "
                + " ".join(f"{k}={v:.3f}" for k, v in r["by_kind"].items()),
                file=sys.stderr,
                flush=True,
            )
    random = random_baseline(groups)
    table = markdown(results, random)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "folds": fold_of,
                "group_rows": {g: len(v[0]) for g, v in groups.items()},
                "random": random,
                "results": results,
            },
            indent=1,
        )
    )
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
