"""Do the ZeroEval files (zeroeval_crux, zeroeval_math_l5) move held-out selection? The default recipe with and
without them, on the shipped holdout, and on the two files' own groups.

    OMP_NUM_THREADS=1 nice .venv/bin/python -m router_training.experiments.zeroeval --out runs/zeroeval \
        [--reuse] [--markdown FILE]

Trains (or, with --reuse, reads from --out) five variants of `router_training.experiments.variants`:
`default` (the shipped recipe), `default-zeroeval` (the same + the two files, the same 8 held-out groups),
`default-zeroeval-held` (the same, with the files' two groups held out as well, so its validation head has seen
neither file), `-held-crux` and `-held-math` (one of the two held out, the other trained on). Reported, all from
training rows only:

- held-out selection (mean pair APGR over the 8 shipped groups) and held-out difficulty APGR, per variant, with
  the per-group numbers;
- the files' own groups: APGR on each group's pair as `train` picks it (neither file labels gpt-4-1106-preview,
  so the group's best model against its median model) and difficulty APGR: for `default` its final router (refitted
  on every shipped row, never saw either file), for the `-held` variants their validation head (fitted without the
  8 shipped groups and the held zeroeval groups);
- on CRUX, gpt-4-turbo-2024-04-09 against Mixtral-8x7B-Instruct (the closest pair the files have to the
  benchmark pair; not the same GPT-4 model), for the `default` router only, which never saw those rows.

No benchmark is read here; `variants --only default --only default-zeroeval` gives them, for information.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_router.routing import load_router
from router_training import data as D
from router_training.evaluate import apgr
from router_training.experiments import variants
from router_training.selection import group_difficulty, group_pairs
from router_training.train import DEFAULT_STRONG, DEFAULT_WEAK

NAMES = (
    "default",
    "default-zeroeval",
    "default-zeroeval-held",
    "default-zeroeval-held-crux",
    "default-zeroeval-held-math",
)
CRUX_PAIR = ("gpt-4-turbo-2024-04-09", "mistralai/Mixtral-8x7B-Instruct-v0.1")


def report_numbers(report: dict) -> dict[str, Any]:
    """The chosen candidate's validation: mean over the shipped 8 groups, per group, and difficulty APGR."""
    chosen = report["selection"]["chosen"]
    (validation,) = [c["validation"] for c in report["selection"]["candidates"] if c["params"] == chosen]
    groups = {g: v["apgr"] for g, v in validation["groups"].items()}
    difficulty = (validation.get("difficulty_apgr") or {}).get("groups", {})
    shipped = [g for g in variants.HOLDOUT if g in groups]
    return {
        "chosen": chosen,
        "selection": float(np.mean([groups[g] for g in shipped])),
        "difficulty": float(np.mean([difficulty[g] for g in shipped if g in difficulty])),
        "groups": groups,
        "difficulty_groups": difficulty,
    }


def new_group_numbers(router_dir: Path, train_dir: Path) -> dict[str, Any]:
    """A router's APGR on the files' groups, scored the way `train` validates a held-out group."""
    rows = D.deduplicate(D.read_rows([train_dir / f"{stem}.jsonl" for stem in variants.ZEROEVAL_FILES]))
    scores = load_router(router_dir, intra_op_num_threads=1).score([r.prompt for r in rows])
    held = np.ones(len(rows), dtype=bool)
    out: dict[str, Any] = {"groups": {}, "difficulty_groups": {}}
    for group, (idx, s_model, w_model, s_lab, w_lab) in group_pairs(rows, held, DEFAULT_STRONG, DEFAULT_WEAK).items():
        out["groups"][group] = {
            "apgr": round(apgr(scores[idx], s_lab, w_lab), 4),
            "n": int(len(idx)),
            "strong": s_model,
            "weak": w_model,
        }
    for group, (idx, mean_score) in group_difficulty(rows, held).items():
        out["difficulty_groups"][group] = round(apgr(scores[idx], np.ones(len(idx)), mean_score), 4)
    strong, weak = CRUX_PAIR
    crux = [
        i
        for i, r in enumerate(rows)
        if r.group == variants.ZEROEVAL_GROUPS[0] and strong in r.scores and weak in r.scores
    ]
    out["crux_pair"] = {
        "apgr": round(
            apgr(
                scores[crux],
                np.array([rows[i].scores[strong] for i in crux]),
                np.array([rows[i].scores[weak] for i in crux]),
            ),
            4,
        ),
        "n": len(crux),
        "strong": strong,
        "weak": weak,
    }
    return out


def random_spread(train_dir: Path, seeds: int = 20) -> dict[str, Any]:
    """A uniform random router on the files' groups: mean and standard deviation over seeds, per group."""
    rows = D.deduplicate(D.read_rows([train_dir / f"{stem}.jsonl" for stem in variants.ZEROEVAL_FILES]))
    groups = group_pairs(rows, np.ones(len(rows), dtype=bool), DEFAULT_STRONG, DEFAULT_WEAK)
    out = {}
    for group, (idx, _, _, s_lab, w_lab) in groups.items():
        values = [apgr(np.random.default_rng(seed).random(len(idx)), s_lab, w_lab) for seed in range(seeds)]
        out[group] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values)), 4)}
    return out


def _own(r: dict[str, Any], group: str) -> str:
    own = r.get("own_groups") or {}
    pair = (own.get("groups") or {}).get(group, {}).get("apgr")
    diff = (own.get("difficulty_groups") or {}).get(group)
    return "–" if pair is None else f"{pair:.3f} / {diff:.3f}"


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "| variant | held-out selection (8 shipped groups) | held-out difficulty | "
        + " | ".join(f"{g} pair / difficulty" for g in variants.ZEROEVAL_GROUPS)
        + " |",
        "|---|---:|---:|" + "---:|" * len(variants.ZEROEVAL_GROUPS),
    ]
    for name in NAMES:
        r = results[name]
        lines.append(
            f"| {variants.VARIANTS[name].description} | {r['selection']:.3f} | {r['difficulty']:.3f} | "
            + " | ".join(_own(r, g) for g in variants.ZEROEVAL_GROUPS)
            + " |"
        )
    spread = results["random_on_own_groups"]
    lines.append(
        "| random, 20 seeds | | | "
        + " | ".join(
            f"{spread[g]['mean']:.3f} ± {spread[g]['sd']:.3f}" if g in spread else "–" for g in variants.ZEROEVAL_GROUPS
        )
        + " |"
    )
    pair = results["default"]["own_groups"]["crux_pair"]
    lines.append("")
    lines.append(
        f"CRUX, {pair['strong']} vs {pair['weak']} ({pair['n']} rows), shipped recipe (never saw the file): "
        f"{pair['apgr']:.3f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_training.experiments.zeroeval", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=Path("runs") / "zeroeval")
    parser.add_argument("--reuse", action="store_true", help="keep variants already trained in --out")
    parser.add_argument("--markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    train_dir = D.shared_data_dir() / "train"
    results: dict[str, Any] = {}
    for name in NAMES:
        folder = args.out / name
        if not (args.reuse and (folder / "router.onnx").is_file()):
            variants.train(name, folder, train_dir)
        results[name] = report_numbers(json.loads((folder / "training_report.json").read_text()))
    results["default"]["own_groups"] = new_group_numbers(args.out / "default", train_dir)
    for name in NAMES[2:]:
        held = results[name]
        held["own_groups"] = {
            "groups": {g: {"apgr": held["groups"][g]} for g in variants.ZEROEVAL_GROUPS if g in held["groups"]},
            "difficulty_groups": {
                g: held["difficulty_groups"][g] for g in variants.ZEROEVAL_GROUPS if g in held["difficulty_groups"]
            },
        }
    results["random_on_own_groups"] = random_spread(train_dir)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "zeroeval.json").write_text(json.dumps(results, indent=1))
    table = markdown(results)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
