"""The quality target's operating point, measured on task families held out of calibration.

Calibration rows: bench/data/deployed_pair_train.jsonl (the deployed pair's 22 train families, seed 1). Held-out
rows: bench/data/deployed_pair_test.jsonl (6 other families, seed 2), never used to calibrate or choose anything.
Scores are the packaged router's (hybrid_router.routing.load_router); the operating point is the product's own
(hybrid_router.routing.operating_point), and the shipped one is read from the packaged file.

For each target: the threshold computed on the calibration rows, then on the held-out rows the local model's
realized failure rate among the prompts kept local, the strong share, and, on the hand-written prompts, the share
of hard prompts sent strong and of trivial prompts kept local (router_training/obvious_cases.json, 20 + 20;
bench/data/fresh_obvious_cases.json, 32 + 32, written before any score was looked at). The local model is SmolLM2
(the packaged one) and, as the "bigger local model" a user would calibrate for, Qwen2.5-Coder-0.5B (labelled on the
same rows). A family-split study then recalibrates on random halves of all 28 families and measures on the other
half, to see what the guarantee is worth when the prompts are not like the labelled ones.

    python bench/quality_target.py            # tables (markdown) and bench/data/quality_target_report.json
    python bench/quality_target.py --answer-fresh   # SmolLM2's answers to the fresh trivial prompts (1 thread,
                                                    # greedy, 48 tokens), judged right or wrong by hand afterwards
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
TRAIN_FILE = DATA / "deployed_pair_train.jsonl"
TEST_FILE = DATA / "deployed_pair_test.jsonl"
FRESH_FILE = DATA / "fresh_obvious_cases.json"
OBVIOUS_FILE = REPO / "router_training" / "obvious_cases.json"
REPORT = DATA / "quality_target_report.json"
ANSWERS_FILE = DATA / "fresh_trivial_smollm2_answers.jsonl"
MODELS = {"smollm2": "smollm2-135m-instruct", "qwen-0.5b": "qwen2.5-coder-0.5b-instruct"}
TARGETS = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
CONFIDENCE = 0.95
SPLITS = 200


def answer_fresh(path: Path = ANSWERS_FILE, max_tokens: int = 48) -> None:
    """The packaged local model's answers to the fresh trivial prompts, one JSON line each (no `right` field: the
    answers have no gold, so they are judged by hand and the judgement added as `right` 0/1 with a `note`)."""
    import time

    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    backend = LlamaCppBackend(None, n_ctx=512, n_threads=1)
    backend.load()
    with path.open("w") as out:
        for prompt in json.loads(FRESH_FILE.read_text())["trivial"]:
            started = time.perf_counter()
            done = backend.complete([{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0)
            row = {"kind": "trivial", "prompt": prompt, "model": backend.name, "answer": done.text}
            out.write(json.dumps({**row, "seconds": round(time.perf_counter() - started, 2)}) + "\n")


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cases() -> dict[str, list[str]]:
    obvious, fresh = json.loads(OBVIOUS_FILE.read_text()), json.loads(FRESH_FILE.read_text())
    return {
        "obvious_hard": obvious["hard"],
        "obvious_trivial": obvious["easy"],
        "fresh_hard": fresh["hard"],
        "fresh_trivial": fresh["trivial"],
    }


def _held_out(threshold: float, scores: np.ndarray, right: np.ndarray) -> dict[str, Any]:
    kept = scores < threshold
    failures = int((right[kept] == 0).sum())
    return {
        "prompts": int(scores.size),
        "kept_local": int(kept.sum()),
        "strong_share": round(float(1 - kept.mean()), 4),
        "local_failures": failures,
        "realized_failure_rate": round(failures / int(kept.sum()), 4) if kept.any() else None,
    }


def _on_cases(threshold: float, case_scores: dict[str, np.ndarray]) -> dict[str, float]:
    out = {}
    for name, scores in case_scores.items():
        if name.endswith("hard"):
            out[name + "_strong"] = round(float((scores >= threshold).mean()), 4)
        else:
            out[name + "_local"] = round(float((scores < threshold).mean()), 4)
    return out


def family_split_study(
    scores: np.ndarray, right: np.ndarray, families: list[str], target: float, splits: int, seed: int = 0
) -> dict[str, Any]:
    """Calibrate on a random half of the families, measure on the other half, `splits` times."""
    from hybrid_router.routing import operating_point as op

    names = sorted(set(families))
    family = np.asarray(families)
    rng = np.random.default_rng(seed)
    met, strong, failures, over = 0, [], [], 0
    for _ in range(splits):
        calibrate = set(rng.permutation(names)[: len(names) // 2])
        mask = np.isin(family, list(calibrate))
        chosen = op.select_threshold(scores[mask], right[mask], target, CONFIDENCE)
        result = _held_out(chosen.threshold, scores[~mask], right[~mask])
        strong.append(result["strong_share"])
        if chosen.met:
            met += 1
        if result["kept_local"]:
            failures.append(result["realized_failure_rate"])
            over += result["realized_failure_rate"] > 1 - target
    return {
        "target": target,
        "splits": splits,
        "met_share": round(met / splits, 4),
        "mean_held_out_strong_share": round(float(np.mean(strong)), 4),
        "splits_keeping_any": len(failures),
        "mean_realized_failure_when_kept": round(float(np.mean(failures)), 4) if failures else None,
        "share_over_target_when_kept": round(over / len(failures), 4) if failures else None,
    }


def family_oracle(right: np.ndarray, families: list[str], target: float, orders: int = 200) -> dict[str, Any]:
    """A ceiling for prompt routers: the score orders prompts by the local model's accuracy on their family (read
    from the labels themselves, so never a real router), in random order within a family."""
    from hybrid_router.routing import operating_point as op

    accuracy = {f: float(right[[g == f for g in families]].mean()) for f in set(families)}
    base = np.array([1.0 - accuracy[f] for f in families])
    rng = np.random.default_rng(0)
    met, kept = 0, []
    for _ in range(orders):
        scores = (base + 1e-3 * rng.uniform(size=base.size)) / (1.0 + 1e-3)
        chosen = op.select_threshold(scores, right, target, CONFIDENCE)
        met += chosen.met
        kept.append(chosen.kept)
    return {"target": target, "orders": orders, "met_share": round(met / orders, 4), "mean_kept": float(np.mean(kept))}


def build() -> dict[str, Any]:
    from hybrid_router.routing import load_router
    from hybrid_router.routing import operating_point as op

    router = load_router(None, intra_op_num_threads=1)
    train, test = _rows(TRAIN_FILE), _rows(TEST_FILE)
    train_scores = np.round(router.score([r["prompt"] for r in train]).astype(np.float64), op.LABEL_DIGITS)
    test_scores = np.round(router.score([r["prompt"] for r in test]).astype(np.float64), op.LABEL_DIGITS)
    case_scores = {name: router.score(prompts).astype(np.float64) for name, prompts in _cases().items()}
    report: dict[str, Any] = {
        "router": f"{router.info.router_id} {router.info.version}",
        "calibration": {"file": str(TRAIN_FILE.relative_to(REPO)), "rows": len(train)},
        "held_out": {
            "file": str(TEST_FILE.relative_to(REPO)),
            "rows": len(test),
            "families": sorted({r["family"] for r in test}),
        },
        "confidence": CONFIDENCE,
    }
    report["shipped"] = _shipped_point(test, test_scores, case_scores)
    fresh = _fresh_trivial_answers()
    if fresh is not None:
        report["fresh_trivial_answers"] = fresh
    report["models"] = {
        label: _model_report(model, train, test, train_scores, test_scores, case_scores)
        for label, model in MODELS.items()
    }
    return report


def _shipped_point(
    test: list[dict[str, Any]], test_scores: np.ndarray, case_scores: dict[str, np.ndarray]
) -> dict[str, Any]:
    """The packaged operating point, and what it does on the held-out rows (for SmolLM2) and the cases."""
    from hybrid_router.routing import operating_point as op

    shipped = op.load(op.PACKAGED_PATH)
    right = np.array([r["scores"][MODELS["smollm2"]] for r in test], dtype=int)
    return {
        "quality_target": shipped.quality_target,
        "quality_confidence": shipped.quality_confidence,
        "threshold": shipped.threshold,
        "met": shipped.met,
        "guarantee": shipped.guarantee,
        "held_out": _held_out(shipped.threshold, test_scores, right),
        "cases": _on_cases(shipped.threshold, case_scores),
    }


def _fresh_trivial_answers() -> dict[str, Any] | None:
    """How often the hand-judged answers to the fresh trivial prompts are wrong (None until some are judged)."""
    from hybrid_router.routing import operating_point as op

    if not ANSWERS_FILE.is_file():
        return None
    judged = [r for r in _rows(ANSWERS_FILE) if "right" in r]
    if not judged:
        return None
    right = sum(r["right"] for r in judged)
    return {
        "model": judged[0]["model"],
        "judged": len(judged),
        "right": right,
        "failure_rate": round(1 - right / len(judged), 4),
        "failure_lower_bound_95": round(1 - op.clopper_pearson_upper(right, len(judged), CONFIDENCE), 4),
    }


def _model_report(
    model: str,
    train: list[dict[str, Any]],
    test: list[dict[str, Any]],
    train_scores: np.ndarray,
    test_scores: np.ndarray,
    case_scores: dict[str, np.ndarray],
) -> dict[str, Any]:
    """One local model: its accuracy, each target's operating point, the family-split study and the oracle."""
    right_train = np.array([r["scores"][model] for r in train], dtype=int)
    right_test = np.array([r["scores"][model] for r in test], dtype=int)
    order = np.argsort(train_scores, kind="stable")
    bottom = max(1, int(0.05 * len(train)))
    all_scores = np.concatenate([train_scores, test_scores])
    all_right = np.concatenate([right_train, right_test])
    all_families = [r["family"] for r in train] + [r["family"] for r in test]
    return {
        "model": model,
        "calibration_accuracy": round(float(right_train.mean()), 4),
        "held_out_accuracy": round(float(right_test.mean()), 4),
        "calibration_accuracy_lowest_5pct": round(float(right_train[order[:bottom]].mean()), 4),
        "targets": [
            _target_row(target, train_scores, right_train, test_scores, right_test, case_scores) for target in TARGETS
        ],
        "family_splits": [
            family_split_study(all_scores, all_right, all_families, target, SPLITS) for target in TARGETS
        ],
        "family_oracle": [
            family_oracle(right_train, [r["family"] for r in train], target) for target in (0.9, 0.8, 0.7)
        ],
    }


def _target_row(
    target: float,
    train_scores: np.ndarray,
    right_train: np.ndarray,
    test_scores: np.ndarray,
    right_test: np.ndarray,
    case_scores: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The threshold calibrated for `target`, and what it does on the held-out rows and the cases."""
    from hybrid_router.routing import operating_point as op

    chosen = op.select_threshold(train_scores, right_train, target, CONFIDENCE)
    return {
        "target": target,
        "threshold": round(chosen.threshold, 6),
        "met": chosen.met,
        "calibration_kept": chosen.kept,
        "calibration_failure_bound": round(chosen.failure_bound, 4),
        "held_out": _held_out(chosen.threshold, test_scores, right_test),
        "cases": _on_cases(chosen.threshold, case_scores),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def markdown(report: dict[str, Any]) -> str:
    shipped = report["shipped"]
    held = shipped["held_out"]
    cases = shipped["cases"]
    lines = [
        f"Shipped: target {shipped['quality_target']:.0%} at {shipped['quality_confidence']:.0%} confidence, "
        f"threshold {shipped['threshold']:.4f} (met: {shipped['met']}).",
        f"Held-out families ({held['prompts']} prompts): kept local {held['kept_local']}, strong share "
        f"{held['strong_share']:.1%}, realized local failure {_pct(held['realized_failure_rate'])}.",
        f"Obvious cases: hard strong {cases['obvious_hard_strong']:.0%}, trivial local "
        f"{cases['obvious_trivial_local']:.0%}; fresh cases: hard strong {cases['fresh_hard_strong']:.0%}, "
        f"trivial local {cases['fresh_trivial_local']:.0%}.",
        "",
    ]
    if "fresh_trivial_answers" in report:
        a = report["fresh_trivial_answers"]
        lines += [
            f"{a['model']} on the fresh trivial prompts (hand-judged): right on {a['right']} of {a['judged']}, "
            f"failure {a['failure_rate']:.0%} (95% lower bound {a['failure_lower_bound_95']:.0%}).",
            "",
        ]
    for _label, data in report["models"].items():
        lines += [
            f"{data['model']} (right on {data['calibration_accuracy']:.1%} of calibration rows, "
            f"{data['calibration_accuracy_lowest_5pct']:.1%} of their lowest-scored 5%, "
            f"{data['held_out_accuracy']:.1%} of held-out rows):",
            "",
            "| target | threshold | calibration rows kept (bound) | held-out kept | held-out realized failure "
            "| held-out strong share | obvious hard strong / trivial local | fresh hard strong / trivial local |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in data["targets"]:
            h, c = row["held_out"], row["cases"]
            bound = f"{row['calibration_kept']} ({row['calibration_failure_bound']:.1%})" if row["met"] else "none"
            lines.append(
                f"| {row['target']:.0%} | {row['threshold']:.4f} | {bound} | {h['kept_local']} | "
                f"{_pct(h['realized_failure_rate'])} | {h['strong_share']:.1%} | "
                f"{c['obvious_hard_strong']:.0%} / {c['obvious_trivial_local']:.0%} | "
                f"{c['fresh_hard_strong']:.0%} / {c['fresh_trivial_local']:.0%} |"
            )
        lines += [
            "",
            f"Family splits ({SPLITS} random halves of the 28 families: calibrate on one, measure on the other):",
            "",
            "| target | splits meeting it | held-out strong share | realized failure (when any kept) "
            "| splits over 1 - target (of those keeping any) |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in data["family_splits"]:
            lines.append(
                f"| {row['target']:.0%} | {row['met_share']:.0%} | {row['mean_held_out_strong_share']:.1%} | "
                f"{_pct(row['mean_realized_failure_when_kept'])} | "
                f"{_pct(row['share_over_target_when_kept'])} ({row['splits_keeping_any']}) |"
            )
        oracle = ", ".join(
            f"{row['target']:.0%}: met in {row['met_share']:.0%} (mean kept {row['mean_kept']:.1f})"
            for row in data["family_oracle"]
        )
        lines += ["", f"Family-level oracle score on the calibration rows ({SPLITS} within-family orders): {oracle}."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--answer-fresh", action="store_true", help="(re)write SmolLM2's fresh trivial answers")
    args = parser.parse_args(argv)
    if args.answer_fresh:
        answer_fresh()
        return 0
    report = build()
    REPORT.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1) if args.json else markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
