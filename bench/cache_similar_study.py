"""Would a similar-match answer cache (`cache:similar`) be safe with the router's own encoder? A study, not a feature.

    python bench/cache_similar_study.py [--requests 10000] [--seed 23] [--entries 100000]

Needs the `onnx` package (the test or train extra): the packaged router's graph computes an L2-normalized static
embedding of the prompt (tensor `embedding`, 256 floats) before its scoring head, and the study exposes it as a
second output. It replays bench/cache_bench.py's workload (same seed, same requests): every request an exact cache
would miss is matched against the nearest earlier stored question (cosine similarity of the user turn's embedding,
brute force). At each threshold, a match at or above it would be a `cache:similar` hit: right when it is the same
question (a paraphrase), a false hit otherwise (a near-miss with another number or name, or another question).
`guard`: a match must also carry the same numbers and the same capitalized words after the first (names, places,
languages), the obvious protection against near-misses. Last, the search time at `--entries` stored vectors.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "layers" / "router"))
sys.path.insert(0, str(REPO / "bench"))

import cache_bench  # noqa: E402

from hybrid_router.cache import normalize_text  # noqa: E402
from hybrid_router.routing import load_router  # noqa: E402
from hybrid_router.usage import percentile  # noqa: E402

THRESHOLDS = (0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99, 0.995)
_NUMBER = re.compile(r"\d+")
_WORD = re.compile(r"[A-Za-z]+")


def encoder():
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    router = load_router(None)
    model = onnx.load(str(router.path))
    model.graph.output.append(helper.make_tensor_value_info("embedding", TensorProto.FLOAT, None))
    router._session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def embed(text: str) -> np.ndarray:
        vector = router._run([text], "embedding")[0].astype(np.float32)
        return vector / max(float(np.linalg.norm(vector)), 1e-9)

    return embed


def guard_of(text: str) -> tuple:
    words = _WORD.findall(text)
    return tuple(sorted(_NUMBER.findall(text))), tuple(sorted(w for w in words[1:] if w[0].isupper()))


def study(requests: int, seed: int) -> None:
    embed = encoder()
    stored_vectors: list[np.ndarray] = []
    stored: list[tuple[str, tuple]] = []  # (identity, guard)
    seen_texts: set[str] = set()
    rows = []  # (kind, best similarity, same question, guard passes)
    for kind, identity, text, temperature in cache_bench.workload(seed, requests):
        if temperature:
            continue
        normalized = normalize_text(text)
        vector = embed(normalized)
        if normalized in seen_texts:
            continue  # an exact hit: not the similar cache's business
        if stored_vectors:
            sims = np.stack(stored_vectors) @ vector
            best = int(np.argmax(sims))
            rows.append((kind, float(sims[best]), stored[best][0] == identity, stored[best][1] == guard_of(text)))
        seen_texts.add(normalized)
        stored_vectors.append(vector)
        stored.append((identity, guard_of(text)))
    paraphrases = sum(kind == "paraphrase" for kind, *_ in rows)
    print(f"{len(rows)} requests an exact cache misses ({paraphrases} paraphrases), seed {seed}")
    print("threshold | guard | similar hits | right (paraphrase) | false hits | false-hit rate | paraphrases served")
    for guard in (False, True):
        for threshold in THRESHOLDS:
            hits = [r for r in rows if r[1] >= threshold and (r[3] or not guard)]
            right = sum(r[2] for r in hits)
            false = len(hits) - right
            served = sum(r[2] and r[0] == "paraphrase" for r in hits)
            rate = false / len(hits) if hits else 0.0
            print(
                f"{threshold:9} | {'yes' if guard else 'no':5} | {len(hits):12} | {right:18} | {false:10} | "
                f"{rate:14.1%} | {served / max(paraphrases, 1):.1%}"
            )


def search_latency(entries: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((entries, 256), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    times = []
    for _ in range(500):
        query = matrix[rng.integers(entries)] + 0.01 * rng.standard_normal(256, dtype=np.float32)
        began = time.perf_counter()
        int(np.argmax(matrix @ query))
        times.append((time.perf_counter() - began) * 1e3)
    print(
        f"brute-force search over {entries} x 256 float32: p50 {percentile(times, 50):.2f} ms, "
        f"p99 {percentile(times, 99):.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    random.seed(args.seed)
    study(args.requests, args.seed)
    search_latency(args.entries, args.seed)


if __name__ == "__main__":
    main()
