"""The variants table of BENCHMARKS.md in one command: train every router variant with the shipped data and
holdout, then measure each one the same way.

    OMP_NUM_THREADS=1 nice .venv/bin/python -m router_training.experiments.variants --out runs/variants \
        [--reuse] [--only NAME ...] [--markdown FILE]

Per variant: held-out selection and difficulty APGR (from its training report: the only numbers used to choose),
APGR / CPT(50%) / CPT(80%) on each benchmark (for information), decision p50 at 128 tokens on one thread (rounds
interleaved across variants, so the ratio to the default is measured in one run) and file size. About 10-15
minutes on 2 cores, most of it training mf and mix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybrid_router.routing import load_router
from router_training.data import shared_data_dir
from router_training.evaluate import evaluate_benchmark, load_benchmark
from router_training.train import TrainConfig, TrainResult, train_router

TRAIN_FILES = (
    "mmlu_pro",
    "routerbench_train",
    "arena_bench_v1",
    "gsm8k_train",
    "routerdc_small_models",
    "alpaca_eval_prefs",
)
# The shipped routers' selection groups (router_training/README.md).
HOLDOUT = (
    "mmlu_pro/biology",
    "mmlu_pro/economics",
    "mmlu_pro/math",
    "routerbench_train/arc-challenge",
    "routerdc_small_models/gsm8k",
    "arena_bench_v1",
    "alpaca_eval_prefs/vicuna",
    "alpaca_eval_prefs/koala",
)
# Correctness files with other model pairs (GPT-4-turbo-2024-04-09 / GPT-4-0314 / Mixtral on CRUX, no Mixtral on
# MATH level 5); measured with and without by router_training.experiments.zeroeval.
ZEROEVAL_FILES = ("zeroeval_crux", "zeroeval_math_l5")
ZEROEVAL_GROUPS = ("zeroeval_crux/crux", "zeroeval_math_l5/math_l5")
EASY_PROMPTS = Path(__file__).resolve().parents[1] / "easy_prompts.jsonl"
BENCHMARKS = {"MT Bench": "routellm_mt_bench.jsonl", "MMLU": "routellm_mmlu.jsonl", "GSM8K": "routellm_gsm8k.jsonl"}


@dataclass(frozen=True)
class Variant:
    description: str
    options: Mapping[str, Any]  # TrainConfig fields beyond data, holdout, out and router_id
    extra_data: Sequence[Path] = field(default=())  # training files after the shared ones
    extra_files: Sequence[str] = field(default=())  # more train/ files (stems), after TRAIN_FILES
    extra_holdout: Sequence[str] = field(default=())  # groups held out beyond HOLDOUT


CLF = {"kind": "clf", "target": "difficulty_centered", "alphas": (0.3, 1, 3, 10), "encoder": "static"}
EASY = {"anchored_files": ("easy_prompts",)}
# The first is the shipped default's training command (router_training/README.md; a test checks they agree).
VARIANTS: dict[str, Variant] = {
    "default": Variant(
        "clf + task-gated cheap features + easy rows (shipped default)",
        {**CLF, **EASY, "features": "task-cheap"},
        (EASY_PROMPTS,),
    ),
    "default-zeroeval": Variant(
        "the default recipe + zeroeval_crux + zeroeval_math_l5",
        {**CLF, **EASY, "features": "task-cheap"},
        (EASY_PROMPTS,),
        ZEROEVAL_FILES,
    ),
    "default-zeroeval-held": Variant(
        "the same, both zeroeval groups held out as well",
        {**CLF, **EASY, "features": "task-cheap"},
        (EASY_PROMPTS,),
        ZEROEVAL_FILES,
        ZEROEVAL_GROUPS,
    ),
    "default-zeroeval-held-crux": Variant(
        "the same, zeroeval_crux held out as well (MATH level 5 trained on)",
        {**CLF, **EASY, "features": "task-cheap"},
        (EASY_PROMPTS,),
        ZEROEVAL_FILES,
        ZEROEVAL_GROUPS[:1],
    ),
    "default-zeroeval-held-math": Variant(
        "the same, zeroeval_math_l5 held out as well (CRUX trained on)",
        {**CLF, **EASY, "features": "task-cheap"},
        (EASY_PROMPTS,),
        ZEROEVAL_FILES,
        ZEROEVAL_GROUPS[1:],
    ),
    "task-cheap": Variant("clf + task-gated cheap features", {**CLF, "features": "task-cheap"}),
    "maths-expert": Variant(
        "clf + task-gated cheap features + maths expert", {**CLF, "features": "task-cheap", "maths_expert": True}
    ),
    "cheap": Variant("clf + cheap features without the gate", {**CLF, "features": "cheap"}),
    "clf": Variant("clf: difficulty ridge on embedding + log length", CLF),
    "mf": Variant(
        "mf: matrix factorisation over all models (RouteLLM)",
        {"kind": "mf", "encoder": "static", "epochs": 200, "dims": (64, 128), "pair_weighting": ("prompt",)},
    ),
    "mix": Variant(
        "mix: chat ridge + task ridge + gate",
        {"kind": "mix", "alphas": (3, 10, 30), "chat_alphas": (100, 1000), "encoder": "static"},
    ),
    "random": Variant("random (hash of token ids)", {"kind": "random"}),
}


def variant_config(name: str, train_dir: Path, out: Path, encoder_from: Path | None = None) -> TrainConfig:
    """The training config of one variant. encoder_from (mix only): reuse the encoder of a trained router."""
    variant = VARIANTS[name]
    options = dict(variant.options)
    if name == "mix" and encoder_from is not None:
        options["encoder_from"] = encoder_from
    stems = list(TRAIN_FILES) + list(variant.extra_files)
    return TrainConfig(
        data=[train_dir / f"{stem}.jsonl" for stem in stems] + list(variant.extra_data),
        holdout=HOLDOUT + tuple(variant.extra_holdout),
        out=out,
        router_id=f"variant-{name}",
        **options,
    )


def train(name: str, out: Path, train_dir: Path, encoder_from: Path | None = None) -> TrainResult:
    return train_router(variant_config(name, train_dir, out, encoder_from))


def selection(report: dict) -> tuple[float | None, float | None]:
    """(held-out selection APGR, held-out difficulty APGR) of the chosen candidate in a training report."""
    chosen = (report.get("selection") or {}).get("chosen")
    for candidate in (report.get("selection") or {}).get("candidates", []):
        if chosen is None or candidate["params"] == chosen:
            validation = candidate["validation"]
            return validation.get("mean_apgr"), (validation.get("difficulty_apgr") or {}).get("mean")
    return None, None


def latency_p50_ms(routers: dict, rounds: int = 5, calls: int = 100) -> dict[str, float]:
    """Decision p50 at 128 tokens, one thread; rounds interleaved across routers."""
    prompt = " ".join(["word"] * 126)  # 126 word pieces + [CLS] + [SEP]
    times: dict[str, list[float]] = {name: [] for name in routers}
    for _ in range(rounds):
        for name, router in routers.items():
            router.decide(prompt)
            for _ in range(calls):
                start = time.perf_counter()
                router.decide(prompt)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "–"
    return f"{100 * x:.1f}%" if pct else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_training.experiments.variants", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "variants")
    parser.add_argument("--reuse", action="store_true", help="keep variants already trained in --out")
    parser.add_argument("--only", action="append", choices=list(VARIANTS), help="measure only these variants")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    data_dir = shared_data_dir()
    train_dir, bench_dir = data_dir / "train", data_dir / "benchmarks"
    names = args.only or list(VARIANTS)
    for name in names:
        folder = args.out / name
        if not (args.reuse and (folder / "router.onnx").is_file()):
            default = args.out / "default" / "router.onnx"
            train(name, folder, train_dir, default if default.is_file() else None)
    routers = {name: load_router(args.out / name, intra_op_num_threads=1) for name in names}
    results: dict[str, dict] = {}
    for name, router in routers.items():
        report = json.loads((args.out / name / "training_report.json").read_text())
        sel, diff = selection(report)
        results[name] = {
            "selection": sel,
            "difficulty": diff,
            "mb": (args.out / name / "router.onnx").stat().st_size / 1e6,
            "benchmarks": {},
        }
        for label, file in BENCHMARKS.items():
            data = load_benchmark(bench_dir / file)
            scores = router.score(data.prompts)
            measured = evaluate_benchmark(data, scores, random_seeds=0, bootstrap=0)
            results[name]["benchmarks"][label] = {k: measured[k] for k in ("apgr", "cpt50", "cpt80")}
    p50 = latency_p50_ms(routers)
    base = p50.get("default")
    header = (
        "| variant | held-out selection | held-out difficulty | "
        + " | ".join(f"{b} APGR / CPT50 / CPT80" for b in BENCHMARKS)
        + " | p50 128 tokens (× default) | file |\n|---|---:|---:|"
        + "---|" * len(BENCHMARKS)
        + "---:|---:|\n"
    )
    lines = []
    for name in names:
        r = results[name]
        cells = [
            f"{fmt(b['apgr'])} / {fmt(b['cpt50'], True)} / {fmt(b['cpt80'], True)}" for b in r["benchmarks"].values()
        ]
        ratio = f" ({p50[name] / base:.2f}×)" if base else ""
        lines.append(
            f"| {VARIANTS[name].description} | {fmt(r['selection'])} | {fmt(r['difficulty'])} | "
            + " | ".join(cells)
            + f" | {p50[name]:.2f} ms{ratio} | {r['mb']:.1f} MB |\n"
        )
    table = header + "".join(lines)
    print(table)
    (args.out / "variants.json").write_text(json.dumps({"results": results, "p50_ms": p50}, indent=1))
    if args.markdown:
        args.markdown.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
