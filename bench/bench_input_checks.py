"""Cost of the request checks that run before routing (cloud `_check_input`: n, tools, content types, prompt size,
runs of combining marks; the device server runs the same `input_problem`) and of the text-only check every body
passes in validation (`unencodable_path`, TextOnly), next to one router decision, in one run; then the JSON depth
scan of the body limits.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_input_checks.py
"""

import json
import statistics
import time

from hybrid_router.api.limits import json_depth
from hybrid_router.api.routes_inference import _check_input
from hybrid_router.openai_schema import ChatCompletionRequest, unencodable_path
from hybrid_router.routing import load_router

router = load_router(None, intra_op_num_threads=1)
ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "é"}]}).input_problem()  # warm-up
for label, text in (
    ("128 tokens", " ".join(["word"] * 126)),
    ("100,000 characters", "word " * 20000),
    ("100,000 characters, not ASCII", "café " * 20000),
):  # ASCII skips the combining-mark scan
    data = {"messages": [{"role": "user", "content": text}]}
    body = ChatCompletionRequest.model_validate(data)
    check, text_only, decide = [], [], []
    for _ in range(300):
        started = time.perf_counter()
        _check_input(body)
        check.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        unencodable_path(data)
        text_only.append((time.perf_counter() - started) * 1e3)
        started = time.perf_counter()
        router.decide(text)
        decide.append((time.perf_counter() - started) * 1e3)
    c, t, d = statistics.median(check), statistics.median(text_only), statistics.median(decide)
    print(
        f"{label}: _check_input p50 {c * 1000:.1f} us, text-only check p50 {t * 1000:.1f} us, router decide p50 "
        f"{d:.3f} ms, ratio {(c + t) / d:.4f}"
    )
# The depth scan BodyLimits runs on a body with more opening brackets than MAX_JSON_DEPTH (fewer are not scanned).
chat = json.dumps({"messages": [{"role": "user", "content": "word " * 20000}]}).encode()
json_depth(b"[" * 5000 + b"]" * 5000)  # imports numpy, as the first large body does
for label, raw, runs in (
    ("a chat body of 100,000 characters", chat, 200),
    ("6 MB of brackets", b"[" * 3_000_000 + b"]" * 3_000_000, 5),
):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        json_depth(raw)
        times.append((time.perf_counter() - started) * 1e3)
    print(f"depth scan of {label}: p50 {statistics.median(times):.2f} ms")
