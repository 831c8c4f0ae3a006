"""Prove that a router file loads and scores, in a child process, so a file that crashes onnxruntime (or makes it
raise) is reported, not suffered: the way hybrid_router.backends.llama_probe proves a llama.cpp build.

The device runs this before a router version may become active (`hybrid-router routers use`, `routers pull`
following the cloud) and before it loads a version it has not proven yet; `hybrid-router doctor` reports it.

    python -m hybrid_router.routing.probe ROUTER_DIR     # exit 0 and one JSON line on success
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hybrid_router.backends.llama_probe import ProbeResult, describe_exit

PROBE_PROMPT = "What is the capital of Japan?"
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds hybrid_router


def probe_router(path: str | os.PathLike[str], python: str = sys.executable, timeout_s: float = 60.0) -> ProbeResult:
    """Load the router at `path` and score one prompt in a child process; never raises, never crashes the caller.
    On success `detail` is the child's JSON line: router_id, version, kind, score."""
    started = time.perf_counter()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    command = [python, "-P", "-m", "hybrid_router.routing.probe", str(path)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"the router did not score in {timeout_s:.0f} s", time.perf_counter() - started)
    except OSError as exc:
        return ProbeResult(False, f"the probe could not start: {exc}", time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    if done.returncode == 0:
        lines = done.stdout.strip().splitlines()
        return ProbeResult(True, lines[-1] if lines else "{}", elapsed)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    return ProbeResult(False, f"onnxruntime {describe_exit(done.returncode)}" + (f": {last}" if last else ""), elapsed)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m hybrid_router.routing.probe ROUTER_DIR", file=sys.stderr)
        return 2
    from hybrid_router.routing import Router

    try:
        router = Router(argv[0], intra_op_num_threads=1)
        score = float(router.score([PROBE_PROMPT])[0])
    except Exception as exc:  # the one line the parent reports
        print(f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}", file=sys.stderr)
        return 1
    if not 0.0 <= score <= 1.0:
        print(f"the router scored {score}, outside [0, 1]", file=sys.stderr)
        return 1
    info = router.info
    print(json.dumps({"router_id": info.router_id, "version": info.version, "kind": info.kind, "score": score}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
