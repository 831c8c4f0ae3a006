"""Routing on conversations: per-message routing, the conversation-aware policy and always-strong, measured on
4-turn conversations of held-out families labelled for the deployed pair.

Rows: bench/data/conversations_test.jsonl (`hybrid-router label --conversations --split test`: the four test
conversation families, seed 2; SmolLM2-135M weak, the Qwen2.5-Coder-0.5B stand-in strong). Each turn was answered by
each model on its own earlier answers and on the other model's; a policy's turn k is judged by the answer of the
model it chose on the context of the model it chose at turn k-1 (the previous turn's model stands for the whole
context, an approximation when a conversation switched more than once). Scores are the packaged router's on each
turn's user message (what the device scores). Nothing here is chosen on these rows: the affinity margin is the
product's default, fixed before they were labelled.

    python bench/conversations.py                # markdown tables and bench/data/conversations_report.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from hybrid_router.costs import CostModel  # noqa: E402
from hybrid_router.routing import load_router  # noqa: E402
from hybrid_router.routing.conversation import (  # noqa: E402
    AFFINITY_MARGIN,
    ConversationFeatures,
    depends_on_context,
    follow_conversation,
)
from hybrid_router.routing.operating_point import clopper_pearson_upper  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "bench" / "data"
ROWS = DATA / "conversations_test.jsonl"
REPORT = DATA / "conversations_report.json"
PACKAGED_POINT = REPO / "layers" / "router" / "hybrid_router" / "config" / "operating_point.json"
TARGET = 0.9
CONFIDENCE = 0.95


def routes_for(policy: str, scores: list[float], prompts: list[str], threshold: float, margin: float) -> list[str]:
    if policy == "always-strong":
        return ["strong"] * len(scores)
    routes: list[str] = []
    for k, (score, prompt) in enumerate(zip(scores, prompts, strict=False)):
        route = "strong" if score >= threshold else "weak"
        if policy == "conversation" and k > 0:
            features = ConversationFeatures("bench", k + 1, routes[-1], depends_on_context(prompt, k + 1))
            route, _ = follow_conversation(route, score, threshold, features, margin)
        routes.append(route)
    return routes


def evaluate(rows: list[dict[str, Any]], scores: list[list[float]], threshold: float, policy: str) -> dict[str, Any]:
    costs = CostModel.default()
    flips = strong_turns = turns = right = 0
    follow_local = follow_local_wrong = local = local_wrong = 0
    cost = 0.0
    for row, row_scores in zip(rows, scores, strict=False):
        prompts = [t["prompt"] for t in row["turns"]]
        routes = routes_for(policy, row_scores, prompts, threshold, AFFINITY_MARGIN)
        flips += sum(a != b for a, b in zip(routes, routes[1:], strict=False))
        for k, route in enumerate(routes):
            context = routes[k - 1] if k else route
            answer = row["answers"][f"{route}@{context}"][k]
            turns += 1
            right += answer["ok"]
            if route == "strong":
                strong_turns += 1
                cost += costs.strong_cost_usd(answer["prompt_tokens"], answer["completion_tokens"])
            else:
                cost += costs.weak_cost_usd(answer["latency_s"])
                local += 1
                local_wrong += 1 - answer["ok"]
                if k > 0:
                    follow_local += 1
                    follow_local_wrong += 1 - answer["ok"]
    n = len(rows)
    return {
        "policy": policy,
        "conversations": n,
        "flips_per_conversation": flips / n,
        "strong_share": strong_turns / turns,
        "accuracy": right / turns,
        "local_turns": local,
        "local_failure_rate": local_wrong / local if local else None,
        "follow_up_local_turns": follow_local,
        "follow_up_local_failures": follow_local_wrong,
        "follow_up_local_failure_rate": follow_local_wrong / follow_local if follow_local else None,
        "follow_up_failure_bound": clopper_pearson_upper(follow_local_wrong, follow_local, CONFIDENCE)
        if follow_local
        else None,
        "cost_usd_per_conversation": cost / n,
    }


def build(rows_path: Path = ROWS) -> dict[str, Any]:
    """The report: for each operating point, each policy's measures on the labelled conversations."""
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    router = load_router(None, intra_op_num_threads=1)
    flat = [t["prompt"] for row in rows for t in row["turns"]]
    flat_scores = [round(float(s), 6) for s in router.score(flat)]
    scores = [flat_scores[i * 4 : i * 4 + 4] for i in range(len(rows))]
    shipped = float(json.loads(PACKAGED_POINT.read_text())["threshold"])
    own, half = router.info.default_threshold, router.threshold_for_share(0.5)
    points = {
        f"shipped default (quality target {TARGET:.0%}, threshold {shipped:.3f})": shipped,
        f"router file's own threshold ({own:.3f}, expert)": own,
        f"strong_share 0.5 (threshold {half:.3f}, expert)": half,
    }
    detector = [
        (depends_on_context(t["prompt"], k + 1), t["depends"]) for row in rows for k, t in enumerate(row["turns"]) if k
    ]
    return {
        "rows": str(rows_path.relative_to(REPO)) if rows_path.is_relative_to(REPO) else str(rows_path),
        "conversations": len(rows),
        "families": sorted({row["family"] for row in rows}),
        "pair": rows[0]["pair"] if rows else None,
        "affinity_margin": AFFINITY_MARGIN,
        "detector_agreement_on_follow_ups": sum(a == b for a, b in detector) / len(detector) if detector else None,
        "turn_accuracy_by_chain": {
            key: sum(a["ok"] for row in rows for a in row["answers"][key]) / (4 * len(rows))
            for key in ("weak@weak", "strong@strong", "weak@strong", "strong@weak")
        },
        "points": {
            name: {
                "threshold": threshold,
                "results": [
                    evaluate(rows, scores, threshold, p) for p in ("per-message", "conversation", "always-strong")
                ],
            }
            for name, threshold in points.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, default=ROWS)
    parser.add_argument("--report", type=Path, default=REPORT)
    args = parser.parse_args()
    report = build(args.rows)
    chain = report["turn_accuracy_by_chain"]
    print(f"{report['conversations']} conversations, families {', '.join(report['families'])}; pair {report['pair']}")
    print("turn accuracy by chain: " + ", ".join(f"{k} {v:.0%}" for k, v in chain.items()))
    print(f"dependence detector agrees with the families' truth on {report['detector_agreement_on_follow_ups']:.0%}")
    for name, point in report["points"].items():
        print(f"\n**{name}**\n")
        print(
            "| policy | flips / conversation | strong share | accuracy (all turns) | local failure rate, "
            "follow-ups (n; 95% upper bound) | cost / conversation (USD) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for r in point["results"]:
            rate = (
                "no local follow-ups"
                if r["follow_up_local_turns"] == 0
                else f"{r['follow_up_local_failure_rate']:.0%} ({r['follow_up_local_turns']}; "
                f"{r['follow_up_failure_bound']:.0%})"
            )
            print(
                f"| {r['policy']} | {r['flips_per_conversation']:.2f} | {r['strong_share']:.0%} | "
                f"{r['accuracy']:.0%} | {rate} | {r['cost_usd_per_conversation']:.6f} |"
            )
    args.report.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
