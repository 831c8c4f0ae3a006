"""Does the router generalise to other strong/weak pairs, on subjects it never saw?

Protocol: a few MMLU-Pro categories are left out of training ENTIRELY (`train --exclude`: not used for selection,
for the final refit or for the calibration reference). A `clf` and an `mf` router are trained on everything else
with the shipped routers' settings (router_training/README.md), then evaluated with router_training.evaluate on the
excluded rows for several model pairs labelled there. The mf router scores each pair with
Router.score_pair(prompts, strong, weak); the clf router's score does not depend on the pair (prompt difficulty).
Prompt length in characters is the plain baseline; the shipped routers, which were trained on these very rows,
are shown for reference.

    OMP_NUM_THREADS=1 python -m router_training.experiments.pairs_generalisation [--out runs/pairs] [--reuse]
        [--category C ...] [--markdown FILE]

Prints a Markdown table; writes OUT/results.json. Training takes a few minutes on one thread.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hybrid_router.routing import Router
from hybrid_router.routing.router import DEFAULT_ROUTER_DIR
from router_training.data import shared_data_dir
from router_training.evaluate import apgr, evaluate_benchmark
from router_training.train import TrainConfig, train_router

ARTIFACTS = DEFAULT_ROUTER_DIR.parent
TRAIN_FILES = (
    "mmlu_pro",
    "routerbench_train",
    "arena_bench_v1",
    "gsm8k_train",
    "routerdc_small_models",
    "alpaca_eval_prefs",
)
# The shipped routers' selection groups (router_training/README.md); the excluded categories are none of them.
SELECTION_HOLDOUT = (
    "mmlu_pro/biology",
    "mmlu_pro/economics",
    "mmlu_pro/math",
    "routerbench_train/arc-challenge",
    "routerdc_small_models/gsm8k",
    "arena_bench_v1",
    "alpaca_eval_prefs/vicuna",
    "alpaca_eval_prefs/koala",
)
# Four kinds of subject: a hard-science one, an applied/quantitative one, a social science, a small technical one.
EXCLUDED_CATEGORIES = ("physics", "business", "psychology", "computer science")
PAIRS = (
    ("gpt-4o-2024-05-13", "Meta-Llama-3_1-8B-Instruct"),
    ("gpt-4o-2024-05-13", "mistralai/Mixtral-8x7B-Instruct-v0.1"),
    ("Meta-Llama-3_1-70B-Instruct", "Meta-Llama-3_1-8B-Instruct"),
    ("gemini-1.5-pro-002", "Phi-3-mini-4k-instruct"),
)
# Same settings as the shipped routers, except the excluded groups.
KIND_OPTIONS = {
    "clf": {"kind": "clf", "target": "difficulty_centered", "alphas": (0.3, 1, 3, 10)},
    "mf": {"kind": "mf", "epochs": 200, "dims": (64, 128), "pair_weighting": ("prompt",)},
}
SHIPPED_OF = {"clf (excluded)": "shipped default clf (saw these rows)", "mf (excluded)": "shipped mf (saw these rows)"}
SHORT = {
    "gpt-4o-2024-05-13": "GPT-4o",
    "Meta-Llama-3_1-8B-Instruct": "Llama-3.1-8B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "Mixtral-8x7B-Instruct",
    "Meta-Llama-3_1-70B-Instruct": "Llama-3.1-70B-Instruct",
    "gemini-1.5-pro-002": "Gemini-1.5-Pro-002",
    "Phi-3-mini-4k-instruct": "Phi-3-mini-4k-instruct",
}


def excluded_groups(categories: Sequence[str]) -> list[str]:
    return [f"mmlu_pro/{category}" for category in categories]


def train_config(kind: str, train_dir: Path, out: Path, categories: Sequence[str]) -> TrainConfig:
    """The shipped routers' training settings for `kind`, with the MMLU-Pro categories left out entirely."""
    return TrainConfig(
        data=[train_dir / f"{name}.jsonl" for name in TRAIN_FILES],
        holdout=SELECTION_HOLDOUT,
        exclude=excluded_groups(categories),
        **KIND_OPTIONS[kind],
        encoder="static",
        encoder_from=ARTIFACTS / "default" / "router.onnx",
        router_id=f"{kind}-static-excl-{len(categories)}cats",
        out=out,
    )


def train(kind: str, train_dir: Path, out: Path, categories: Sequence[str], reuse: bool) -> dict:
    report_path = out / "training_report.json"
    if reuse and report_path.is_file():
        report = json.loads(report_path.read_text())
        if report.get("excluded_groups") == sorted(excluded_groups(categories)):
            print(f"reusing {out}", file=sys.stderr)
            return report
    print(f"training {kind} into {out}", file=sys.stderr)
    return train_router(train_config(kind, train_dir, out, categories)).report


def held_out_rows(train_dir: Path, categories: Sequence[str]) -> list[dict]:
    rows = []
    with open(train_dir / "mmlu_pro.jsonl", encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj.get("category") in categories:
                rows.append(
                    {
                        "id": obj["id"],
                        "prompt": obj["prompt"],
                        "scores": obj["scores"],
                        "category": obj["category"],
                        "contaminated": False,
                    }
                )
    return rows


def category_split(values: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each prompt's category mean of the score, the score minus that mean): the between- and within-category parts."""
    means = np.zeros_like(values)
    for category in np.unique(categories):
        means[categories == category] = values[categories == category].mean()
    return means, values - means


def paired_delta(
    a: np.ndarray, b: np.ndarray, strong: np.ndarray, weak: np.ndarray, resamples: int, seed: int = 0
) -> dict:
    """APGR(a) - APGR(b) on the same prompts, with a paired bootstrap 90% interval."""
    rng = np.random.default_rng(seed)
    deltas = []
    for _ in range(resamples):
        idx = rng.integers(0, len(strong), len(strong))
        if abs(strong[idx].mean() - weak[idx].mean()) > 1e-12:
            deltas.append(apgr(a[idx], strong[idx], weak[idx]) - apgr(b[idx], strong[idx], weak[idx]))
    return {
        "delta": round(apgr(a, strong, weak) - apgr(b, strong, weak), 6),
        "ci90": [round(float(np.percentile(deltas, 5)), 6), round(float(np.percentile(deltas, 95)), 6)],
    }


def evaluate_pairs(
    routers: dict[str, Router], rows: list[dict], pairs: Sequence[tuple[str, str]], bootstrap: int, random_seeds: int
) -> list[dict]:
    prompts = [r["prompt"] for r in rows]
    pair_free = {name: r.score(prompts) for name, r in routers.items() if r.info.kind != "mf"}
    pair_free["prompt length"] = np.array([len(p) for p in prompts], dtype=np.float64)
    results = []
    for strong, weak in pairs:
        labelled = np.array([strong in r["scores"] and weak in r["scores"] for r in rows])
        sub_rows = [r for r, keep in zip(rows, labelled, strict=False) if keep]
        scores = dict(pair_free)
        for name, router in routers.items():
            if router.info.kind == "mf":
                scores[name] = router.score_pair(prompts, strong, weak)
        categories = sorted({r["category"] for r in sub_rows})
        cat_of = np.array([r["category"] for r in sub_rows])
        s_lab = np.array([r["scores"][strong] for r in sub_rows], dtype=np.float64)
        w_lab = np.array([r["scores"][weak] for r in sub_rows], dtype=np.float64)
        # The router that knows each category's true strong-minus-weak gap (uses the labels: an upper bound for
        # routing by subject alone).
        category_oracle = apgr(category_split(s_lab - w_lab, cat_of)[0], s_lab, w_lab)
        for name, values in scores.items():
            values = np.asarray(values, dtype=np.float64)[labelled]
            between, within = category_split(values, cat_of)
            entry = {
                "strong": strong,
                "weak": weak,
                "router": name,
                "overall": evaluate_benchmark(
                    sub_rows, values, strong, weak, bootstrap=bootstrap, random_seeds=random_seeds
                ),
                "by_category": {},
                "between_category_apgr": round(apgr(between, s_lab, w_lab), 6),
                "within_category_apgr": round(apgr(within, s_lab, w_lab), 6),
                "category_oracle_apgr": round(category_oracle, 6),
            }
            shipped = SHIPPED_OF.get(name)
            if shipped in scores:
                entry["delta_vs_shipped"] = paired_delta(
                    values, np.asarray(scores[shipped], dtype=np.float64)[labelled], s_lab, w_lab, bootstrap
                )
            for category in categories:
                mask = np.array([r["category"] == category for r in sub_rows])
                cat_rows = [r for r, keep in zip(sub_rows, mask, strict=False) if keep]
                try:
                    entry["by_category"][category] = evaluate_benchmark(
                        cat_rows, values[mask], strong, weak, bootstrap=bootstrap, random_seeds=random_seeds
                    )
                except ValueError as exc:  # strong and weak tie on this category: PGR undefined
                    entry["by_category"][category] = {"error": str(exc)}
            results.append(entry)
    return results


def _pct(x: float | None) -> str:
    return "never" if x is None else f"{100 * x:.1f}%"


def markdown(results: list[dict], categories: Sequence[str]) -> str:
    lines = [
        "| pair (strong vs weak) | n | strong / weak accuracy | router | APGR (90% CI) | CPT50 | CPT80 |",
        "| --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    pairs = list(dict.fromkeys((e["strong"], e["weak"]) for e in results))
    for strong, weak in pairs:
        entries = [e for e in results if (e["strong"], e["weak"]) == (strong, weak)]
        first = entries[0]["overall"]
        label = f"{SHORT.get(strong, strong)} vs {SHORT.get(weak, weak)}"
        means = f"{100 * first['strong_mean']:.1f}% / {100 * first['weak_mean']:.1f}%"
        for e in entries:
            o = e["overall"]
            ci = o["apgr_ci90"]
            lines.append(
                f"| {label} | {o['n']} | {means} | {e['router']} | {o['apgr']:.3f} ({ci[0]:.3f}-{ci[1]:.3f}) "
                f"| {_pct(o['cpt50'])} | {_pct(o['cpt80'])} |"
            )
            label, means = "", ""
        lines.append(
            f"| | | | random (mean ± sd, {first['random_seeds']} seeds) | "
            f"{first['random_apgr']:.3f} ± {first['random_apgr_std']:.3f} | | |"
        )
    cat_names = sorted(categories)
    routers = list(dict.fromkeys(e["router"] for e in results))
    lines += [
        "",
        "APGR per excluded category (random: sd of a random router's APGR over the seeds, the noise floor):",
        "",
        "| pair | category | n | strong / weak | random sd | " + " | ".join(routers) + " |",
        "| --- | --- | ---: | ---: | ---: |" + " ---: |" * len(routers),
    ]
    for strong, weak in pairs:
        entries = {e["router"]: e for e in results if (e["strong"], e["weak"]) == (strong, weak)}
        for category in cat_names:
            ref = entries[routers[0]]["by_category"].get(category, {})
            if "apgr" not in ref:
                continue
            cells = [f"{entries[r]['by_category'][category]['apgr']:.3f}" for r in routers]
            lines.append(
                f"| {SHORT.get(strong, strong)} vs {SHORT.get(weak, weak)} | {category} | {ref['n']} | "
                f"{100 * ref['strong_mean']:.1f}% / {100 * ref['weak_mean']:.1f}% | {ref['random_apgr_std']:.3f} | "
                + " | ".join(cells)
                + " |"
            )
    lines += [
        "",
        "Where the APGR comes from: the router's score replaced by its mean per category (between categories: "
        "routing by subject) or by its deviation from that mean (within a category); the category oracle "
        "routes by each category's true strong-minus-weak gap (it uses the labels). Δ vs shipped: APGR of the "
        "router trained without these categories minus the shipped one's, paired bootstrap 90% CI.",
        "",
        "| pair | router | APGR | between categories | within categories | category oracle | Δ vs shipped (90% CI) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for strong, weak in pairs:
        for e in results:
            if (
                (e["strong"], e["weak"]) != (strong, weak)
                or e["router"] not in SHIPPED_OF
                and e["router"] != "prompt length"
            ):
                continue
            d = e.get("delta_vs_shipped")
            delta = f"{d['delta']:+.3f} ({d['ci90'][0]:+.3f} to {d['ci90'][1]:+.3f})" if d else ""
            lines.append(
                f"| {SHORT.get(strong, strong)} vs {SHORT.get(weak, weak)} | {e['router']} | "
                f"{e['overall']['apgr']:.3f} | {e['between_category_apgr']:.3f} | "
                f"{e['within_category_apgr']:.3f} | {e['category_oracle_apgr']:.3f} | {delta} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_training.experiments.pairs_generalisation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "pairs", help="where the routers are trained")
    parser.add_argument("--train-dir", type=Path, default=shared_data_dir() / "train")
    parser.add_argument(
        "--category",
        action="append",
        default=None,
        help=f"MMLU-Pro category to exclude (repeatable; default: {', '.join(EXCLUDED_CATEGORIES)})",
    )
    parser.add_argument("--reuse", action="store_true", help="reuse routers already trained in --out")
    parser.add_argument(
        "--no-shipped", action="store_true", help="leave out the shipped routers (trained on these rows)"
    )
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--random-seeds", type=int, default=20)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    args = parser.parse_args(argv)
    categories = tuple(args.category or EXCLUDED_CATEGORIES)
    started = time.time()

    reports = {kind: train(kind, args.train_dir, args.out / kind, categories, args.reuse) for kind in ("clf", "mf")}
    routers = {f"{kind} (excluded)": Router(args.out / kind / "router.onnx") for kind in ("clf", "mf")}
    if not args.no_shipped:
        routers["shipped default clf (saw these rows)"] = Router(ARTIFACTS / "default" / "router.onnx")
        routers["shipped mf (saw these rows)"] = Router(ARTIFACTS / "mf" / "router.onnx")
    rows = held_out_rows(args.train_dir, categories)
    if not rows:
        print(f"error: no mmlu_pro rows in categories {categories}", file=sys.stderr)
        return 2
    for kind, report in reports.items():
        if report.get("excluded_groups") != sorted(excluded_groups(categories)):
            raise RuntimeError(f"{kind} router was not trained with the categories excluded")
    results = evaluate_pairs(routers, rows, PAIRS, args.bootstrap, args.random_seeds)
    table = markdown(results, categories)
    out = {
        "excluded_categories": list(categories),
        "n_rows": len(rows),
        "training": {
            k: {
                "selection": r.get("selection", {}).get("chosen"),
                "rows_labelled_used": r["rows_labelled_used"],
                "seconds": r.get("seconds"),
            }
            for k, r in reports.items()
        },
        "bootstrap": args.bootstrap,
        "random_seeds": args.random_seeds,
        "results": results,
        "seconds": round(time.time() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(out, indent=1))
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
