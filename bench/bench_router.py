"""Router speed: decision latency, batched throughput, cold start, file size. A script, not a test.

    .venv/bin/python bench/bench_router.py [--router PATH] [--json-out runs/bench_router.json]

- Decision latency: Router.decide(prompt) on ONE onnxruntime thread, prompts of 32, 128 and 512 tokens as the
  router's own tokenizer counts them ([CLS] and [SEP] included; the router may truncate longer prompts, see
  `tokens_scored`). p50 / p99 per round; the table shows the median over rounds.
- Throughput: Router.score(batch of 32 prompts of 128 tokens) on TWO threads; prompts/s, median over rounds.
- Cold start: a fresh `python` process that imports the runtime, loads the router and makes one decision;
  wall time seen by the parent (interpreter start included) and the in-process part; median of >= 5 runs.
- File size: router.onnx, tokenizer.json and any external-data files beside it.
The machine is shared and timings are noisy: compare medians and ratios, never single runs. The JSON records the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

LENGTHS = (32, 128, 512)
BATCH = 32
THROUGHPUT_TOKENS = 128

# Plain English words for synthetic prompts; cycled from different offsets so that prompts differ.
WORDS = (
    "the quick analysis of a long report shows that most customers prefer shorter answers when they ask simple "
    "questions about prices delivery times and returns while harder questions about contracts taxes medicine or "
    "mathematics need careful reasoning several steps and sometimes a table of numbers before a useful answer can "
    "be written explain why the sum of two odd numbers is always even and give an example then write a short poem "
    "about the sea in winter compare three ways to sort a list in python and say which one is fastest for nearly "
    "sorted data translate the following sentence into french and keep the tone friendly summarise the history of "
    "the printing press in five sentences for a school project"
).split()


def load_tokenizer(path: Path) -> Any:
    """The router's tokenizer.json with its own truncation and padding switched off (we count raw tokens)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_prompt(tokenizer: Any, total_tokens: int, offset: int = 0) -> str:
    """A prompt whose encoding is exactly total_tokens tokens including [CLS] and [SEP]."""
    body = total_tokens - 2
    if body < 1:
        raise ValueError("a prompt needs at least 3 tokens")
    words: list[str] = []
    count = 0
    i = offset
    while True:
        word = WORDS[i % len(WORDS)]
        pieces = len(tokenizer.encode(word, add_special_tokens=False).ids)
        if count + pieces > body:
            break
        words.append(word)
        count += pieces
        i += 1
    words.extend(["the"] * (body - count))  # "the" is one word piece
    text = " ".join(words)
    got = len(tokenizer.encode(text, add_special_tokens=False).ids) + 2
    if got != total_tokens:
        raise RuntimeError(f"built a {got}-token prompt, wanted {total_tokens}")
    return text


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def latency_rounds(router: Any, prompts: list[str], calls: int, rounds: int, warmup: int) -> dict[str, Any]:
    for k in range(warmup):
        router.decide(prompts[k % len(prompts)])
    p50s, p99s = [], []
    for _ in range(rounds):
        times = []
        for k in range(calls):
            prompt = prompts[k % len(prompts)]
            started = time.perf_counter()
            router.decide(prompt)
            times.append((time.perf_counter() - started) * 1000.0)
        p50s.append(percentile(times, 50))
        p99s.append(percentile(times, 99))
    return {
        "p50_ms": statistics.median(p50s),
        "p99_ms": statistics.median(p99s),
        "p50_ms_rounds": p50s,
        "p99_ms_rounds": p99s,
        "calls_per_round": calls,
    }


def throughput_rounds(router: Any, prompts: list[str], batches: int, rounds: int) -> dict[str, Any]:
    batch_list = [[prompts[(b * BATCH + j) % len(prompts)] for j in range(BATCH)] for b in range(batches)]
    router.score(batch_list[0])
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for batch in batch_list:
            router.score(batch)
        rates.append(batches * BATCH / (time.perf_counter() - started))
    return {"prompts_per_s": statistics.median(rates), "prompts_per_s_rounds": rates, "batches_per_round": batches}


COLD_CODE = """
import json, sys, time
started = time.perf_counter()
from hybrid_router.routing import load_router
router = load_router(sys.argv[1])
decision = router.decide("What is the capital of France?")
print(json.dumps({"in_process_s": time.perf_counter() - started, "route": decision.route}))
"""


def cold_start(router_path: Path, runs: int) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HYBRID_ROUTER_THREADS="1")
    walls, inside = [], []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", COLD_CODE, str(router_path)], capture_output=True, text=True, env=env, timeout=300
        )
        walls.append(time.perf_counter() - started)
        if proc.returncode != 0:
            raise RuntimeError(f"cold-start process failed: {proc.stderr.strip()[-500:]}")
        inside.append(json.loads(proc.stdout.strip().splitlines()[-1])["in_process_s"])
    return {
        "wall_s": statistics.median(walls),
        "in_process_s": statistics.median(inside),
        "wall_s_runs": walls,
        "in_process_s_runs": inside,
        "runs": runs,
    }


def file_sizes(router_path: Path, tokenizer_path: Path) -> dict[str, int]:
    sizes = {"router_onnx_bytes": router_path.stat().st_size, "tokenizer_bytes": tokenizer_path.stat().st_size}
    external = sum(p.stat().st_size for p in router_path.parent.glob("*.data") if p.is_file())
    sizes["external_data_bytes"] = external
    sizes["total_bytes"] = sum(sizes.values())
    return sizes


def run(args: argparse.Namespace) -> dict[str, Any]:
    from hybrid_router.routing import load_router
    from hybrid_router.routing.artifact import TOKENIZER_FILE, resolve_router_path
    from hybrid_router.routing.router import DEFAULT_ROUTER_DIR, ENV_ROUTER

    router_path = resolve_router_path(args.router or os.environ.get(ENV_ROUTER) or DEFAULT_ROUTER_DIR)
    one = load_router(router_path, intra_op_num_threads=1)
    tokenizer_meta = one.metadata.get("tokenizer", {})
    tokenizer_path = router_path.parent / tokenizer_meta.get("file", TOKENIZER_FILE)
    max_tokens = int(tokenizer_meta.get("max_tokens", 256))
    tokenizer = load_tokenizer(tokenizer_path)

    load_before = os.getloadavg()
    latency = {}
    for length in LENGTHS:
        prompts = [token_prompt(tokenizer, length, offset=7 * k) for k in range(args.distinct)]
        latency[str(length)] = latency_rounds(one, prompts, args.calls, args.rounds, args.warmup)
        latency[str(length)]["tokens_scored"] = min(length, max_tokens)
    two = load_router(router_path, intra_op_num_threads=2)
    batch_prompts = [token_prompt(tokenizer, THROUGHPUT_TOKENS, offset=5 * k) for k in range(max(args.distinct, BATCH))]
    throughput = throughput_rounds(two, batch_prompts, args.batches, args.rounds)
    throughput.update({"threads": 2, "batch": BATCH, "tokens": THROUGHPUT_TOKENS})
    cold = cold_start(router_path, args.cold_runs)
    load_after = os.getloadavg()

    p50 = {k: v["p50_ms"] for k, v in latency.items()}
    ratios = {
        "p99_over_p50": {k: v["p99_ms"] / v["p50_ms"] for k, v in latency.items()},
        "p50_512_over_32": p50["512"] / p50["32"],
        "batch_speedup_vs_single_128": throughput["prompts_per_s"] / (1000.0 / p50["128"]),
    }
    return {
        "router_id": one.info.router_id,
        "router_kind": one.info.kind,
        "router_path": str(router_path),
        "max_tokens": max_tokens,
        "latency_one_thread": latency,
        "throughput": throughput,
        "cold_start": cold,
        "files": file_sizes(router_path, tokenizer_path),
        "ratios": ratios,
        "settings": {k: getattr(args, k) for k in ("calls", "rounds", "warmup", "batches", "cold_runs", "distinct")},
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "onnxruntime": __import__("onnxruntime").__version__,
            "loadavg_before": load_before,
            "loadavg_after": load_after,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lat = result["latency_one_thread"]
    thr = result["throughput"]
    cold = result["cold_start"]
    files = result["files"]
    lines = [
        f"Router `{result['router_id']}` (kind {result['router_kind']}), {result['router_path']}",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    for length, v in lat.items():
        scored = f" (scored as {v['tokens_scored']})" if v["tokens_scored"] != int(length) else ""
        lines.append(
            f"| decision latency, {length} tokens{scored}, 1 thread | p50 {v['p50_ms']:.2f} ms, p99 {v['p99_ms']:.2f} ms "
            f"(p99/p50 {v['p99_ms'] / v['p50_ms']:.1f}) |"
        )
    lines += [
        f"| throughput, batch {thr['batch']} x {thr['tokens']} tokens, {thr['threads']} threads | "
        f"{thr['prompts_per_s']:.0f} prompts/s ({result['ratios']['batch_speedup_vs_single_128']:.1f}x single-prompt rate) |",
        f"| cold start to first decision (median of {cold['runs']}) | {cold['wall_s'] * 1000:.0f} ms wall, "
        f"{cold['in_process_s'] * 1000:.0f} ms after interpreter start |",
        f"| router file | {files['router_onnx_bytes'] / 1e6:.2f} MB (+ tokenizer {files['tokenizer_bytes'] / 1e6:.2f} MB"
        + (f", external data {files['external_data_bytes'] / 1e6:.2f} MB" if files["external_data_bytes"] else "")
        + ") |",
        f"| latency ratio 512 / 32 tokens (p50) | {result['ratios']['p50_512_over_32']:.1f} |",
        "",
        f"Medians over {result['settings']['rounds']} rounds of {result['settings']['calls']} calls; "
        f"load average {result['machine']['loadavg_before'][0]:.2f} before, {result['machine']['loadavg_after'][0]:.2f} after.",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--router", default=None, help="router .onnx or its folder (default: env, else packaged)")
    parser.add_argument("--json-out", default="runs/bench_router.json", help="where to write the JSON results")
    parser.add_argument("--calls", type=int, default=300, help="timed decisions per round and length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batches", type=int, default=10, help="batches of 32 per throughput round")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--distinct", type=int, default=40, help="distinct prompts per length")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = run(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown(result))
    out = Path(args.json_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nJSON: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
