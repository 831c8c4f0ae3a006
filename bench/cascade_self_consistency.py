"""Short self-consistency as a cascade confidence signal, measured on part of the deployed pair's train file.

    python bench/cascade_self_consistency.py --rows 120 --samples 4

For the first N train rows (the label file interleaves families), the local model (the product's LlamaCppBackend)
answers K more times at temperature 0.8; the signal is the share of those samples whose answer equals the greedy
answer's (the row's own SmolLM2 output). An answer is the text after the last "Answer:", else the last number in
the reply, else the reply's first line, lower-cased. On the same rows the script reports APGR of each confidence
alone (higher confidence = send weak) and the seconds the samples cost per prompt. Never reads the test file.
Not a shipped signal: it costs K more local answers per prompt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from hybrid_router.cascade import CascadePolicy, final_span  # noqa: E402
from router_training.evaluate import apgr  # noqa: E402
from router_training.label_families import numbers  # noqa: E402

TRAIN_FILE = Path(__file__).resolve().parents[1] / "bench" / "data" / "deployed_pair_train.jsonl"


def answer_key(text: str) -> str:
    span = final_span(text)
    if span:
        return span.strip().lower().rstrip(".")
    found = numbers(text)
    if found:
        return f"{found[-1]:g}"
    lines = text.strip().splitlines()
    return lines[0].strip().lower() if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    from hybrid_router.backends.llama_cpp import LlamaCppBackend

    parser = argparse.ArgumentParser(prog="bench/cascade_self_consistency.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=120)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in TRAIN_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = rows[: args.rows]
    weak_name, strong_name = rows[0]["pair"]["weak"], rows[0]["pair"]["strong"]
    backend = LlamaCppBackend(n_ctx=512, n_threads=1, seed=1)
    backend.load()
    agreement, spent = [], []
    for row in rows:
        greedy = answer_key(row["outputs"][weak_name]["text"])
        messages = [{"role": "user", "content": row["prompt"]}]
        started = time.perf_counter()
        same = sum(
            answer_key(backend.complete(messages, max_tokens=int(row["max_tokens"]), temperature=0.8).text) == greedy
            for _ in range(args.samples)
        )
        spent.append(time.perf_counter() - started)
        agreement.append(same / args.samples)
    strong = np.array([float(r["scores"][strong_name]) for r in rows])
    weak = np.array([float(r["scores"][weak_name]) for r in rows])
    signals = {"self-consistency": np.array(agreement)}
    for signal in ("mean_logprob", "min_logprob"):
        policy = CascadePolicy(0.0, 1.0, signal=signal)  # type: ignore[arg-type]
        signals[signal] = np.array([policy.confidence(r["weak_confidence"], int(r["max_tokens"])) for r in rows])
    result = {
        "rows": len(rows),
        "samples": args.samples,
        "seconds_per_prompt": round(float(np.mean(spent)), 3),
        "apgr": {name: round(apgr(-conf, strong, weak), 4) for name, conf in signals.items()},
        "weak_right_share": round(float(weak.mean()), 4),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['rows']} train rows, {args.samples} samples each at temperature 0.8, "
            f"{result['seconds_per_prompt']:.2f} s of samples per prompt; APGR of each confidence alone: "
            + ", ".join(f"{k} {v:.3f}" for k, v in result["apgr"].items())
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
