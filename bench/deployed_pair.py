"""The deployed pair: SmolLM2-135M-Instruct (device) against Qwen2.5-Coder-0.5B-Instruct (the strong stand-in),
on prompt families held out of every training and selection step.

Protocol (router_training/label_families.py holds the split):
- train families (seed 1): add_sub, multiply, sort_numbers, reverse_word, unit_conversion, max_of_list,
  word_length, parity, next_letter, date_add, gsm8k (final answers of gsm8k_train) and the 11 easy-prompt template
  families; labelled into bench/data/deployed_pair_train.jsonl, the pair router's only training and selection data;
- test families (seed 2): count_letter, weekday, compare, word_problem, sequence, remainder; labelled once into
  bench/data/deployed_pair_test.jsonl, never trained or selected on.

Each test row carries `scores` (both models' 0/1 outcomes), `family` and `router_scores` {router name: score},
higher = send strong, computed by the product's own code: `default` is the packaged router
(hybrid_router.routing.load_router), `pair` the router `hybrid-router train --kind pair` made from the train rows,
`cascade` the shipped cascade policy (hybrid_router.cascade, config/cascade.toml, chosen on the train file by
bench/cascade_select.py) over the default router's score and the row's `weak_confidence` (the draft's features).
More routers are added by registering a scorer in SCORERS and rebuilding.

    python bench/deployed_pair.py                       # the table from the committed test file
    python bench/deployed_pair.py --json
    python bench/deployed_pair.py --build --labels TEST_LABELS.jsonl --pair-router DIR   # (re)write the test file
    python bench/deployed_pair.py --build --labels bench/data/deployed_pair_test.jsonl --routers cascade
    python bench/deployed_pair.py --latency 20          # time cascade drafts on this machine (local model)

APGR and CPT come from router_training.evaluate (the project's one implementation); intervals are bootstrap 90%
over the test prompts (200 resamples). Random is averaged over 20 seeds (its interval pools every seed's bootstrap).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from router_training.evaluate import apgr, bootstrap_apgr, evaluate_scores  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
TEST_FILE = DATA / "deployed_pair_test.jsonl"
TRAIN_FILE = DATA / "deployed_pair_train.jsonl"
WEAK = "smollm2-135m-instruct"
STRONG = "qwen2.5-coder-0.5b-instruct"
RANDOM_SEEDS = 20
BOOTSTRAP = 200

# ------------------------------------------------------------------------------------------ router scores

Scorer = Callable[[Sequence[dict[str, Any]], dict[str, Any]], np.ndarray]


def _default_scores(rows: Sequence[dict[str, Any]], options: dict[str, Any]) -> np.ndarray:
    from hybrid_router.routing import load_router
    from hybrid_router.routing.router import DEFAULT_ROUTER_DIR

    return load_router(DEFAULT_ROUTER_DIR).score([r["prompt"] for r in rows])


def _pair_scores(rows: Sequence[dict[str, Any]], options: dict[str, Any]) -> np.ndarray:
    from hybrid_router.routing import load_router

    if not options.get("pair_router"):
        raise SystemExit("the pair score needs --pair-router DIR (hybrid-router train --kind pair ... --out DIR)")
    router = load_router(options["pair_router"])
    if (router.info.strong_model, router.info.weak_model) != (rows[0]["pair"]["strong"], rows[0]["pair"]["weak"]):
        raise SystemExit(
            f"the pair router is for {router.info.strong_model} over {router.info.weak_model}, "
            f"the rows for {rows[0]['pair']['strong']} over {rows[0]['pair']['weak']}"
        )
    return router.score([r["prompt"] for r in rows])


def _cascade_scores(rows: Sequence[dict[str, Any]], options: dict[str, Any]) -> np.ndarray:
    """The shipped cascade policy's order: CascadePolicy.score(default router score, the draft's confidence)."""
    from hybrid_router.cascade import load_policy

    policy = load_policy()
    router = _default_scores(rows, options)
    return np.array(
        [
            policy.score(float(score), policy.confidence(row["weak_confidence"], int(row["max_tokens"])))
            for score, row in zip(router, rows, strict=False)
        ]
    )


# name -> scorer(rows, options): a row's score for that router (higher = send strong). Add a router here.
SCORERS: dict[str, Scorer] = {"default": _default_scores, "pair": _pair_scores, "cascade": _cascade_scores}


def router_scores(name: str, rows: Sequence[dict[str, Any]], **options: Any) -> np.ndarray:
    """Scores of router `name` for rows (aligned), from the product's own code."""
    if name not in SCORERS:
        raise KeyError(f"no scorer for router {name!r} (known: {', '.join(SCORERS)})")
    scores = np.asarray(SCORERS[name](rows, options), dtype=np.float64).reshape(-1)
    if scores.shape[0] != len(rows) or not np.all(np.isfinite(scores)):
        raise ValueError(f"router {name!r} gave {scores.shape[0]} finite scores for {len(rows)} rows")
    return scores


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def build(labels: Path, out: Path, names: Sequence[str], **options: Any) -> list[dict[str, Any]]:
    """The test file: the label rows with router_scores[name] for every named router (earlier scores kept)."""
    rows = read_rows(labels)
    if not rows:
        raise SystemExit(f"{labels}: no rows")
    for name in names:
        for row, score in zip(rows, router_scores(name, rows, **options), strict=False):
            row.setdefault("router_scores", {})[name] = round(float(score), 6)
    tmp = out.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(out)
    return rows


# ------------------------------------------------------------------------------------------ measures


def _measures(scores: np.ndarray, strong: np.ndarray, weak: np.ndarray) -> dict[str, Any]:
    result = evaluate_scores(scores, strong, weak, random_seeds=0, bootstrap=BOOTSTRAP)
    return {
        "apgr": result["apgr"],
        "apgr_ci90": result["apgr_ci90"],
        "cpt50": result["cpt50"],
        "cpt80": result["cpt80"],
    }


def _random(strong: np.ndarray, weak: np.ndarray) -> dict[str, Any]:
    runs, boots = [], []
    for seed in range(RANDOM_SEEDS):
        scores = np.random.default_rng(seed).random(strong.shape[0])
        runs.append(_measures(scores, strong, weak))
        boots.append(bootstrap_apgr(scores, strong, weak, BOOTSTRAP, seed))
    pooled = np.concatenate(boots)

    def mean(key: str) -> float | None:
        values = [r[key] for r in runs if r[key] is not None]
        return round(float(np.mean(values)), 6) if values else None

    return {
        "apgr": mean("apgr"),
        "apgr_ci90": [round(float(np.percentile(pooled, 5)), 6), round(float(np.percentile(pooled, 95)), 6)],
        "cpt50": mean("cpt50"),
        "cpt80": mean("cpt80"),
        "seeds": RANDOM_SEEDS,
        "apgr_seed_std": round(float(np.std([r["apgr"] for r in runs], ddof=1)), 6),
    }


def paired_difference(
    a: np.ndarray, b: np.ndarray, strong: np.ndarray, weak: np.ndarray, resamples: int = BOOTSTRAP, seed: int = 0
) -> dict[str, Any]:
    """APGR(a) - APGR(b) on the same prompts, with a paired bootstrap 90% interval."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, strong.shape[0], strong.shape[0])
        if np.isclose(strong[idx].mean(), weak[idx].mean()):
            continue
        diffs.append(apgr(a[idx], strong[idx], weak[idx]) - apgr(b[idx], strong[idx], weak[idx]))
    return {
        "difference": round(apgr(a, strong, weak) - apgr(b, strong, weak), 6),
        "ci90": [round(float(np.percentile(diffs, 5)), 6), round(float(np.percentile(diffs, 95)), 6)],
    }


def measure(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every router's measures on the rows, plus random, prompt length and oracle, per-family APGR, the
    pair - default difference and the models' accuracies."""
    weak_name, strong_name = rows[0]["pair"]["weak"], rows[0]["pair"]["strong"]
    strong = np.array([float(r["scores"][strong_name]) for r in rows])
    weak = np.array([float(r["scores"][weak_name]) for r in rows])
    names = [n for n in SCORERS if all(n in r.get("router_scores", {}) for r in rows)]
    names += sorted({n for r in rows for n in r.get("router_scores", {})} - set(names))
    scores = {n: np.array([float(r["router_scores"][n]) for r in rows]) for n in names}
    table = {
        "random": _random(strong, weak),
        "prompt length": _measures(np.array([len(r["prompt"]) for r in rows], dtype=float), strong, weak),
    }
    for name in names:
        table[name] = _measures(scores[name], strong, weak)
    table["oracle"] = _measures(strong - weak, strong, weak)
    families: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        families[r["family"]].append(i)
    per_family = {}
    for family, idx in sorted(families.items()):
        ix = np.array(idx)
        entry: dict[str, Any] = {
            "n": len(idx),
            "strong": round(float(strong[ix].mean()), 3),
            "weak": round(float(weak[ix].mean()), 3),
            "strong_only": int((strong[ix] > weak[ix]).sum()),
            "weak_only": int((weak[ix] > strong[ix]).sum()),
        }
        for name in names:
            try:
                entry[name] = round(apgr(scores[name][ix], strong[ix], weak[ix]), 3)
            except ValueError:
                entry[name] = None
        for name in names:
            entry[f"{name}_mean_score"] = round(float(scores[name][ix].mean()), 4)
        per_family[family] = entry
    out: dict[str, Any] = {
        "n": len(rows),
        "weak_model": weak_name,
        "strong_model": strong_name,
        "weak_mean": round(float(weak.mean()), 4),
        "strong_mean": round(float(strong.mean()), 4),
        "strong_only": int((strong > weak).sum()),
        "weak_only": int((weak > strong).sum()),
        "table": table,
        "families": per_family,
    }
    out["labelling"] = labelling_cost(rows)
    if "pair" in scores and "default" in scores:
        out["pair_minus_default"] = paired_difference(scores["pair"], scores["default"], strong, weak)
    if "cascade" in scores and "default" in scores:
        out["cascade_minus_default"] = paired_difference(scores["cascade"], scores["default"], strong, weak)
        if all("weak_confidence" in r and weak_name in r.get("outputs", {}) for r in rows):
            out["cascade_operating"] = cascade_operating(rows, scores["cascade"], strong, weak)
    return out


def cascade_operating(
    rows: Sequence[dict[str, Any]], scores: np.ndarray, strong: np.ndarray, weak: np.ndarray
) -> dict[str, Any]:
    """The shipped policy's own decisions on the rows (cascade score >= its pivot sends strong): how many prompts
    drafted, were kept, escalated; the strong share and PGR; and the labelled weak model's seconds per draft."""
    from hybrid_router.cascade import load_policy

    policy = load_policy()
    router = _default_scores(rows, {})
    drafted = np.array([policy.pre_route(float(s)) == "draft" for s in router])
    to_strong = scores >= policy.pivot
    quality = np.where(to_strong, strong, weak).mean()
    weak_name = rows[0]["pair"]["weak"]
    seconds = np.array([float(r["outputs"][weak_name]["latency_s"]) for r in rows])
    escalated = drafted & to_strong
    return {
        "min_confidence": policy.min_confidence,
        "band": [policy.low, policy.high],
        "signal": policy.signal,
        "drafted": int(drafted.sum()),
        "kept": int((drafted & ~to_strong).sum()),
        "escalated": int(escalated.sum()),
        "strong_share": round(float(to_strong.mean()), 4),
        "pgr": round(float((quality - weak.mean()) / (strong.mean() - weak.mean())), 4),
        "labelled_draft_s_escalated": round(float(seconds[escalated].mean()), 3) if escalated.any() else None,
    }


def draft_latency(rows: Sequence[dict[str, Any]], per_group: int, threads: int = 1) -> dict[str, Any]:
    """Cascade's added time, measured with the product's local backend on this machine: for up to `per_group`
    escalated and `per_group` kept test prompts (the shipped policy's decisions), the draft (LlamaCppBackend.draft,
    with log-probabilities) and a plain answer (complete) of the same prompt. An escalated prompt adds its whole
    draft before the strong answer; a kept draft adds the log-probability bookkeeping over a plain answer (and a
    streaming client sees nothing until the draft is complete)."""
    import time

    from hybrid_router.backends.llama_cpp import LlamaCppBackend
    from hybrid_router.cascade import load_policy

    policy = load_policy()
    scores = _cascade_scores(rows, {})
    router = _default_scores(rows, {})
    drafted = [i for i, s in enumerate(router) if policy.pre_route(float(s)) == "draft"]
    groups = {
        "escalated": [i for i in drafted if scores[i] >= policy.pivot][:per_group],
        "kept": [i for i in drafted if scores[i] < policy.pivot][:per_group],
    }
    backend = LlamaCppBackend(n_ctx=512, n_threads=threads)
    backend.load()
    out: dict[str, Any] = {"threads": threads}

    def seconds(call: Callable[..., Any], indices: list[int]) -> float | None:
        """Mean time of `call` over the prompts, one pass (so no call finds its own prompt cached)."""
        spent = []
        for i in indices:
            started = time.perf_counter()
            call([{"role": "user", "content": rows[i]["prompt"]}], max_tokens=int(rows[i]["max_tokens"]))
            spent.append(time.perf_counter() - started)
        return round(float(np.mean(spent)), 3) if spent else None

    for name, indices in groups.items():
        out[name] = {
            "n": len(indices),
            "draft_s": seconds(backend.draft, indices),
            "plain_s": seconds(backend.complete, indices),
        }
    return out


def labelling_cost(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per model: seconds per prompt (mean, median) and completion tokens, from the label rows' outputs."""
    cost = {}
    for model in (rows[0]["pair"]["weak"], rows[0]["pair"]["strong"]):
        outputs = [r["outputs"][model] for r in rows if model in r.get("outputs", {})]
        if outputs:
            latency = np.array([o["latency_s"] for o in outputs])
            tokens = np.array([o["completion_tokens"] for o in outputs])
            cost[model] = {
                "mean_s": round(float(latency.mean()), 3),
                "median_s": round(float(np.median(latency)), 3),
                "mean_completion_tokens": round(float(tokens.mean()), 1),
                "length_stops": int(sum(o["finish_reason"] == "length" for o in outputs)),
            }
    return cost


def check_held_out(test_rows: Sequence[dict[str, Any]], train_path: Path) -> dict[str, Any]:
    """The test families and prompts appear nowhere in the training file."""
    train = read_rows(train_path) if train_path.is_file() else []
    test_families = {r["family"] for r in test_rows}
    shared = test_families & {r["family"] for r in train}
    prompts = {r["prompt"] for r in train} & {r["prompt"] for r in test_rows}
    if shared or prompts:
        raise SystemExit(f"not held out: families {sorted(shared)}, {len(prompts)} shared prompts")
    return {
        "train_rows": len(train),
        "train_families": sorted({r["family"] for r in train}),
        "test_families": sorted(test_families),
        "train_seeds": sorted({r["seed"] for r in train}),
        "test_seeds": sorted({r["seed"] for r in test_rows}),
    }


def _pct(x: float | None) -> str:
    return "never" if x is None else f"{100 * x:.1f}%"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"{result['n']} test prompts; weak {result['weak_model']} {result['weak_mean']:.3f}, strong "
        f"{result['strong_model']} {result['strong_mean']:.3f}; strong right and weak wrong on "
        f"{result['strong_only']}, the reverse on {result['weak_only']}",
        "",
        "| router | APGR (90% CI) | CPT(50%) | CPT(80%) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, m in result["table"].items():
        label = f"random (mean of {m['seeds']} seeds)" if name == "random" else name
        ci = m["apgr_ci90"]
        lines.append(
            f"| {label} | {m['apgr']:.3f} ({ci[0]:.3f}-{ci[1]:.3f}) | {_pct(m['cpt50'])} | {_pct(m['cpt80'])} |"
        )
    for name in ("pair", "cascade"):
        if f"{name}_minus_default" in result:
            d = result[f"{name}_minus_default"]
            lines += [
                "",
                f"{name} - default APGR: {d['difference']:+.3f} (paired bootstrap 90% CI "
                f"{d['ci90'][0]:+.3f} to {d['ci90'][1]:+.3f})",
            ]
    if "cascade_operating" in result:
        o = result["cascade_operating"]
        lines += [
            "",
            f"cascade at its shipped setting ({o['signal']}, band {o['band'][0]:.3f}-{o['band'][1]:.3f}, "
            f"min confidence {o['min_confidence']}): {o['drafted']} drafted, {o['kept']} kept, "
            f"{o['escalated']} escalated; {o['strong_share']:.1%} strong, PGR {o['pgr']:.3f}",
        ]
    names = [n for n in result["table"] if n not in ("random", "prompt length", "oracle")]
    lines += [
        "",
        "Per test family (APGR within a family is n/a where both models score the same mean):",
        "",
        "| family | n | weak | strong | strong only | weak only | "
        + " | ".join(f"APGR {n}" for n in names)
        + " | "
        + " | ".join(f"mean score {n}" for n in names)
        + " |",
        "| --- " + "| ---: " * (5 + 2 * len(names)) + "|",
    ]
    for family, f in result["families"].items():
        cells = [str(f["n"]), f"{f['weak']:.2f}", f"{f['strong']:.2f}", str(f["strong_only"]), str(f["weak_only"])]
        cells += ["n/a" if f[n] is None else f"{f[n]:.3f}" for n in names]
        cells += [f"{f[n + '_mean_score']:.3f}" for n in names]
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    for model, c in result.get("labelling", {}).items():
        lines.append(
            f"labelling {model}: {c['mean_s']:.2f} s per prompt (median {c['median_s']:.2f}), "
            f"{c['mean_completion_tokens']:.1f} answer tokens, {c['length_stops']} cut at max_tokens"
        )
    if "held_out" in result:
        h = result["held_out"]
        lines += [
            "",
            f"train families (seed {h['train_seeds']}, {h['train_rows']} rows): {', '.join(h['train_families'])}",
            f"test families (seed {h['test_seeds']}): {', '.join(h['test_families'])}",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/deployed_pair.py", description=__doc__.split("\n")[0])
    parser.add_argument("--test", type=Path, default=TEST_FILE, help="test file with router_scores")
    parser.add_argument("--train", type=Path, default=TRAIN_FILE, help="training label file (held-out check)")
    parser.add_argument("--build", action="store_true", help="(re)write --test from --labels with router scores")
    parser.add_argument("--labels", type=Path, default=None, help="label rows of the test families (--build)")
    parser.add_argument("--routers", default=",".join(SCORERS), help="routers to score with --build")
    parser.add_argument("--pair-router", type=Path, default=None, help="the pair router (folder or .onnx)")
    parser.add_argument(
        "--latency",
        type=int,
        default=0,
        metavar="N",
        help="also time N escalated and N kept cascade drafts with the local model",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.build:
        if args.labels is None:
            parser.error("--build needs --labels")
        build(args.labels, args.test, [n for n in args.routers.split(",") if n], pair_router=args.pair_router)
    rows = read_rows(args.test)
    result = measure(rows)
    result["held_out"] = check_held_out(rows, args.train)
    if args.latency:
        result["draft_latency"] = draft_latency(rows, args.latency)
    text = markdown(result)
    if "draft_latency" in result:
        d = result["draft_latency"]
        for name in ("escalated", "kept"):
            if d[name]["n"]:
                text += (
                    f"\ncascade draft timing, {d[name]['n']} {name} prompts ({d['threads']} thread): draft "
                    f"{d[name]['draft_s']:.2f} s, plain answer {d[name]['plain_s']:.2f} s"
                )
    print(json.dumps(result, indent=2) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
