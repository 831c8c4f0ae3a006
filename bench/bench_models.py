"""Load time and generation speed of the local models (the weak SmolLM2, the strong stand-in Qwen), one thread.

OMP_NUM_THREADS=1 python bench/bench_models.py [--models smollm2 qwen] [--tokens 128] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from local_stack.model import LlamaTextModel
from local_stack.weights import resolve_model

PROMPT = [{"role": "user", "content": "Write a short story about a robot learning to paint."}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["smollm2", "qwen"])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for spec in args.models:
        model = LlamaTextModel(resolve_model(spec), n_ctx=1024, n_threads=1)
        began = time.perf_counter()
        model.load()
        load_s = time.perf_counter() - began
        rates = []
        for _ in range(args.runs):
            began = time.perf_counter()
            generation = model.complete_chat(PROMPT, args.tokens, 0.0)
            rates.append(generation.completion_tokens / (time.perf_counter() - began))
        model.close()
        print(
            f"{model.name}: load {load_s:.2f} s, generation median {statistics.median(rates):.1f} tokens/s "
            f"over {args.runs} runs of {args.tokens} tokens ({', '.join(f'{r:.1f}' for r in rates)})"
        )


if __name__ == "__main__":
    main()
